"""Facts: what the doctor knows about a machine, as plain JSON round-trippable dataclasses.

A `Facts` object is the single contract between the probes (which gather facts on this machine), the report
parsers (which read the same facts out of pasted text) and the rules (pure functions from facts to findings).

Conventions:
- `None` means *unknown* (not probed, or the report did not say). `False`/empty means *known absent*.
- Versions are strings as the tool printed them ("570.86.10", "12.8", "2.7.0+cu128").
- Compute capability is a string "major.minor" ("8.6", "12.0").
- Every probe records a `ProbeStatus` in `Facts.probes` so a missing fact always has a reason.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass
class ProbeStatus:
    """How one probe went. A probe never raises: it records why it failed here."""

    name: str
    ok: bool = True
    error: str | None = None  # one sentence: why the probe could not collect its facts
    exit_code: int | None = None  # of the child process, where there was one
    stderr_tail: str | None = None  # last lines of the child's stderr
    timed_out: bool = False
    elapsed_s: float | None = None


@dataclass
class GPU:
    index: int | None = None
    name: str | None = None
    uuid: str | None = None
    pci_bus_id: str | None = None
    compute_capability: str | None = None  # "8.6"
    memory_total_mb: int | None = None  # MiB, as NVML/nvidia-smi report
    memory_free_mb: int | None = None
    memory_used_mb: int | None = None
    mig_mode: bool | None = None  # MIG enabled on this GPU
    mig_devices: list[str] = field(default_factory=list)  # MIG-<uuid> of instances
    driver_model: str | None = None  # Windows: "WDDM" | "TCC" | "MCDM"
    utilization_pct: int | None = None
    temperature_c: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    persistence_mode: bool | None = None
    ecc_errors_uncorrected: int | None = None


@dataclass
class Driver:
    present: bool | None = None  # an NVIDIA driver (NVML library / nvidia-smi) is installed
    loaded: bool | None = None  # the kernel module answers
    version: str | None = None  # "570.86.10"
    cuda_version: str | None = None  # max CUDA runtime the driver supports ("12.8"), nvidia-smi "CUDA Version"
    nvml_error: str | None = None  # NVML failure class: library_not_found | driver_not_loaded | lib_rm_mismatch | no_permission | unknown
    nvml_error_text: str | None = None
    nvidia_smi_path: str | None = None
    nvidia_smi_error: str | None = None  # what nvidia-smi printed when it failed
    kernel_module_version: str | None = None  # /proc/driver/nvidia/version
    source: str | None = None  # "nvml" | "nvidia-smi" | "report"


@dataclass
class Toolkit:
    nvcc_path: str | None = None
    nvcc_version: str | None = None  # "12.8"
    cuda_home: str | None = None  # CUDA_HOME
    cuda_path: str | None = None  # CUDA_PATH (Windows)
    libcudart: list[str] = field(default_factory=list)  # libcudart files found on the loader path


@dataclass
class Platform:
    system: str | None = None  # "Linux" | "Windows" | "Darwin"
    release: str | None = None
    machine: str | None = None  # "x86_64" | "AMD64" | "aarch64" | "arm64"
    distro: str | None = None  # "Ubuntu 22.04.4 LTS"
    is_wsl: bool | None = None
    wsl_lib_dir: bool | None = None  # /usr/lib/wsl/lib exists
    wsl_libcuda: bool | None = None  # /usr/lib/wsl/lib/libcuda.so* exists
    wsl_linux_driver: str | None = None  # a Linux NVIDIA driver package/module found inside WSL ("nvidia-driver-550")
    pci_nvidia_devices: int | None = None  # NVIDIA display/3D controllers on the PCI bus (Linux /sys), driver or not
    in_container: bool | None = None
    container_kind: str | None = None  # "docker" | "podman" | "kubernetes" | "containerd" | ...
    long_paths_enabled: bool | None = None  # Windows LongPathsEnabled
    symlinks_supported: bool | None = None  # can this user create symlinks (Windows Developer Mode / admin)
    shell: str | None = None  # "bash" | "powershell" | "cmd" | "zsh" | ...
    hostname: str | None = None  # redacted on save


@dataclass
class Env:
    vars: dict[str, str] = field(default_factory=dict)  # the variables that matter (tokens never included)
    hf_token_set: bool | None = None
    cuda_path_entries: list[str] = field(default_factory=list)  # PATH / LD_LIBRARY_PATH entries that mention CUDA


@dataclass
class PythonEnv:
    executable: str | None = None
    version: str | None = None  # "3.11.7"
    prefix: str | None = None
    is_venv: bool | None = None
    is_conda: bool | None = None
    packages: dict[str, str] = field(default_factory=dict)  # normalized name -> version
    pip_available: bool | None = None
    # interpreter-vs-packages mismatch: the pip/site the user installed into is not this interpreter's
    package_locations: dict[str, str] = field(default_factory=dict)  # name -> site dir, for torch & friends
    pip_python: str | None = None  # the interpreter the `pip` on PATH installs into (from its shebang)


@dataclass
class Torch:
    installed: bool | None = None
    import_ok: bool | None = None
    import_error: str | None = None  # last line of the exception, or the crash
    import_error_kind: str | None = None  # dll | segfault | timeout | module_not_found | other
    version: str | None = None  # "2.7.0+cu128"
    cuda: str | None = None  # torch.version.cuda; "" / None with installed=True means a CPU build
    hip: str | None = None
    cudnn: str | None = None  # "90100"
    arch_list: list[str] | None = None  # ["sm_75", "sm_80", ...]
    cuda_available: bool | None = None
    device_count: int | None = None
    devices: list[dict[str, Any]] = field(default_factory=list)  # {"name", "capability": "8.6", "total_mb"}
    cuda_op_ok: bool | None = None
    cuda_op_error: str | None = None
    bf16_supported: bool | None = None
    file: str | None = None  # torch.__file__
    cxx11abi: bool | None = None
    distributed_available: bool | None = None
    nccl_available: bool | None = None
    libuv_available: bool | None = None  # TCPStore(use_libuv=True) works (Windows wheels long lacked it)
    nccl_version: str | None = None  # torch.cuda.nccl.version() as "2.21.5"
    nccl_error: str | None = None  # why torch.cuda.nccl.version() failed where NCCL should be there
    # peer_access[i][j]: torch.cuda.can_device_access_peer(i, j) in torch's device order (None on the diagonal or
    # where the call failed); None when not probed (fewer than 2 GPUs, or an older probe)
    peer_access: list[list[bool | None]] | None = None
    warnings: list[str] = field(default_factory=list)  # warnings printed on import / first CUDA use


@dataclass
class Topology:
    """How the GPUs are connected, as `nvidia-smi topo -m` (links) and `nvidia-smi topo -p2p r` (peer access) print
    it, in nvidia-smi's (PCI) order. Rows and columns are the GPUs only (NICs are left out)."""

    gpus: list[str] = field(default_factory=list)  # the row labels: "GPU0", "GPU1", ...
    links: list[list[str]] | None = None  # links[i][j]: "X", "NV12", "PIX", "PXB", "PHB", "NODE", "SYS"
    p2p: list[list[str]] | None = None  # p2p[i][j]: "X", "OK", "NS", "GNS", "CNS", "TNS", "DR", "U"
    legend: dict[str, str] = field(default_factory=dict)  # code -> meaning, as the tool printed it
    source: str | None = None  # "nvidia-smi topo -m" (probed) | "report"
    error: str | None = None  # why the probe could not read it


@dataclass
class Bnb:
    installed: bool | None = None
    import_ok: bool | None = None
    import_error: str | None = None
    version: str | None = None
    native_lib: str | None = None  # file name of the native library it loaded
    lib_kind: str | None = None  # cuda | cpu | none | other
    quant_ok: bool | None = None  # 4-bit quantize/dequantize round trip on the GPU
    quant_error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class Reach:
    """One try to reach a model source: the URL asked, and the answer or why none came."""

    role: str  # "hub" (huggingface.co) | "mirror" (HF_ENDPOINT when it is not huggingface.co) | "modelscope"
    endpoint: str  # "https://hf-mirror.com"
    url: str | None = None  # the cheap URL requested (only its headers are read)
    ok: bool = False  # an HTTP answer below 500 came back
    status: int | None = None  # its HTTP status
    latency_ms: int | None = None  # until the answer, or until the failure
    error: str | None = None  # dns | timeout | refused | reset | tls | proxy | http | other
    detail: str | None = None  # the error's first line


@dataclass
class HF:
    home: str | None = None
    hub_cache: str | None = None
    endpoint: str | None = None
    token_present: bool | None = None
    cache_bytes: int | None = None
    disk_free_bytes: int | None = None
    disk_total_bytes: int | None = None
    # reachability of the Hub, the configured mirror and ModelScope. None: not checked (a pasted report that does
    # not say, `doctor --offline`, HF_HUB_OFFLINE); reach_skipped then says why when the doctor chose not to
    reach: list[Reach] | None = None
    reach_skipped: str | None = None  # "HF_HUB_OFFLINE=1" | "--offline"
    reach_timeout_s: float | None = None  # how long each check waited at most
    proxy: str | None = None  # the proxy the checks went through (HTTPS_PROXY/HTTP_PROXY/ALL_PROXY), no credentials


@dataclass
class Signature:
    """An error signature found in a log or traceback: an id from the findings catalog and the line it rests on."""

    id: str
    line: str
    source: str | None = None  # "file.txt:123"
    data: dict[str, Any] = field(default_factory=dict)  # extracted values, e.g. {"capability": "12.0"}


@dataclass
class Facts:
    schema: int = SCHEMA_VERSION
    origin: str = "probe"  # "probe" | "report"
    tool_version: str | None = None
    collected_at: float | None = None
    platform: Platform = field(default_factory=Platform)
    driver: Driver = field(default_factory=Driver)
    gpus: list[GPU] | None = None  # None: unknown; []: known none
    topology: Topology = field(default_factory=Topology)
    toolkit: Toolkit = field(default_factory=Toolkit)
    env: Env = field(default_factory=Env)
    python: PythonEnv = field(default_factory=PythonEnv)
    torch: Torch = field(default_factory=Torch)
    bnb: Bnb = field(default_factory=Bnb)
    hf: HF = field(default_factory=HF)
    signatures: list[Signature] = field(default_factory=list)
    probes: dict[str, ProbeStatus] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # report files / kinds merged into these facts
    # reports only: the line each fact read from free text came from ("torch.version" -> "issue.txt:12: ...")
    quoted: dict[str, str] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)  # two parts of a report that disagree on a fact

    # --- JSON ---------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Facts":
        return _from_dict(cls, data)

    @classmethod
    def from_json(cls, text: str) -> "Facts":
        return cls.from_dict(json.loads(text))


def _from_dict(tp: Any, data: Any) -> Any:
    """Build dataclass `tp` from `data`, ignoring unknown keys (forward compatible) and keeping defaults."""
    if data is None:
        return None
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp, vars(sys.modules[tp.__module__]))
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in data:
                kwargs[f.name] = _convert(hints[f.name], data[f.name])
        return tp(**kwargs)
    return data


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        return _convert(non_none[0], value) if len(non_none) == 1 else value
    if dataclasses.is_dataclass(hint):
        return _from_dict(hint, value)
    if origin is list and args:
        return [_convert(args[0], v) for v in value]
    if origin is dict and len(args) == 2:
        return {k: _convert(args[1], v) for k, v in value.items()}
    return value


WHOLE_LISTS = ("gpus", "links", "p2p", "peer_access")


def merge(base: Facts, other: Facts) -> Facts:
    """Merge `other` into a copy of `base`: known values in `other` fill unknowns in `base`; lists extend.

    Used when several `--from` reports describe one machine (collect_env in one file, a traceback in another).
    """
    out = Facts.from_dict(base.to_dict())
    _merge_into(out, other)
    return out


def _merge_into(dst: Any, src: Any) -> None:
    for f in dataclasses.fields(src):
        a, b = getattr(dst, f.name), getattr(src, f.name)
        if b is None or b == [] or b == {}:
            continue
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
            _merge_into(a, b)
        elif isinstance(a, list) and isinstance(b, list):
            if f.name in WHOLE_LISTS:  # a list that describes one thing as a whole: the first report's stands
                if not a:
                    setattr(dst, f.name, list(b))
            else:
                setattr(dst, f.name, a + [x for x in b if x not in a])
        elif isinstance(a, dict) and isinstance(b, dict):
            merged = dict(a)
            merged.update({k: v for k, v in b.items() if k not in a})
            setattr(dst, f.name, merged)
        elif a is None or a == "" or (f.name in ("schema", "origin")):
            setattr(dst, f.name, b)
