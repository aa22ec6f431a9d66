"""Error signatures: stable substrings of real error messages -> finding ids (a data table), and the scanner.

Each row is (id, regex, condition). The regex is searched case-insensitively in each cleaned line; its named groups
become `Signature.data`. A condition names a fact that must hold for the row to count, checked after the whole
report was read (e.g. "No module named 'triton'" is a problem only on Windows). The sources of the strings are in
shared/KNOWLEDGE.md PART 1.4 and the corpus in tests/doctor/corpus/.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tunedoc.doctor.facts import Facts, Signature
from tunedoc.doctor.reports.text import Report, shape_of


@dataclass(frozen=True)
class Row:
    id: str
    pattern: str
    # None | "windows" | "linux" | "not-linux" | "wsl" | "mig" | "outside-range" | "no-torch-lib"
    when: str | None = None
    key: str | None = None  # a literal every match holds, where _key() cannot find one (it is inside a group)


R = Row
TABLE: list[Row] = [
    # --- GPU architecture vs the torch build
    R("torch-arch-unsupported", r"(?P<gpu>(?:NVIDIA )?[\w .-]+?) with CUDA capability sm_(?P<sm>\d+) is not compatible "
      r"with the current PyTorch installation"),
    # torch's capability warnings: old ("no longer supports this GPU"), 2.8+ ("Minimum and Maximum ... (7.0) - (12.0)",
    # which also fires for sm_121 on a build with sm_120 kernels: benign), 2.10+ ("compute capability (CC) 7.0")
    R("torch-arch-unsupported", r"Found GPU\s?(?P<index>\d+) (?P<gpu>.+?) which is of (?:cuda|compute) capability "
      r"(?:\(CC\) )?(?P<cc>\d+\.\d+)", when="outside-range"),
    R("torch-arch-unsupported", r"Support for (?:Maxwell and Pascal|Volta|\w+) architectures? (?:is|are) removed for CUDA"),
    R("torch-arch-unsupported", r"no kernel image is available for execution on the device"),
    R("torch-arch-unsupported", r"CUDA error: invalid device function"),
    # --- torch build and import
    R("torch-cpu-build", r"Torch not compiled with CUDA enabled"),
    R("torch-import-dll", r"\[WinError (?P<winerror>126|127|1114)\](?:[^\n]*?(?:Error loading \"?(?P<dll>[^\"]*?\.dll)|"
      r"(?P<dll2>[\w.-]+\.dll)))?"),
    R("torch-import-dll", r"(?P<dll>(?:libtorch\w*|libc10\w*|libcudnn\w*|libnccl|libcublas\w*|libcusparse\w*|"
      r"libnvJitLink|libnvrtc)[\w.]*\.so[\w.]*): cannot open shared object file"),
    R("torch-missing", r"No module named '?torch'?\s*$"),
    R("bnb-missing", r"No module named '?bitsandbytes'?\s*$"),
    # --- driver
    R("driver-too-old", r"NVIDIA driver on your system is too old \(found version (?P<found_raw>\d+)\)"),
    R("driver-too-old", r"CUDA driver version is insufficient for CUDA runtime version"),
    R("driver-too-old", r"Error 804: forward compatibility was attempted on non supported HW"),
    R("driver-too-old", r"forward compatibility was attempted on non supported HW"),
    R("driver-too-old", r"CUDA driver version is insufficient"),  # cut before "for CUDA runtime version"
    # miners and other CUDA apps print cudaErrorInsufficientDriver with the driver's CUDA version (cuDriverGetVersion:
    # 9020 = CUDA 9.2), e.g. "CUDA error: Insufficient CUDA driver: 9020" (ethminer#1640)
    R("driver-too-old", r"Insufficient CUDA driver(?::\s*(?P<found_raw>\d{4,5})\b)?"),
    # 803: the CUDA user-space library is newer than the kernel driver (an old driver under a newer CUDA, a compat
    # package, an upgrade without reboot); threads fix it by updating the driver (easydiffusion#379)
    R("driver-too-old", r"Error 803: system has unsupported display driver / cuda driver combination"),
    R("driver-too-old", r"system has unsupported display driver / cuda driver combination"),
    # a container (docker without the nvidia runtime, a Kubernetes pod) that has no driver library mounted
    R("no-driver", r"could not load NVML library"),
    # NVML loses the device inside a running container (systemd cgroup driver + daemon-reload, no-cgroups)
    R("container-nvml-lost", r"Failed to initialize NVML: Unknown Error"),
    R("driver-too-old", r"the provided PTX was compiled with an unsupported toolchain"),
    R("no-driver", r"Found no NVIDIA driver on your system"),
    R("driver-not-loaded", r"NVIDIA-SMI has failed because it couldn.t communicate with the NVIDIA driver"),
    R("driver-library-mismatch", r"Driver/library version mismatch"),
    R("wsl-libcuda-path", r"Could not load library libcudnn\w*\.so[\d.]*\. Error: libcuda\.so: cannot open shared object"),
    R("wsl-libcuda-path", r"libcuda\.so(?:\.1)?: cannot open shared object file", when="wsl"),
    R("mig-device-selection", r"device >= 0 && device < num_gpus INTERNAL ASSERT FAILED", when="mig"),
    # --- CUDA runtime, toolkit, cuDNN, extensions
    R("libcudart-missing", r"(?P<lib>libcudart\.so[\d.]*): cannot open shared object file"),
    R("libcudart-missing", r"Missing dependency: (?P<lib>libcudart\.so[\d.]*)"),
    R("libcudart-missing", r"Could not load dynamic library '(?P<lib>libcud(?:art|blas\w*)\.so[\d.]*)'"),
    R("libcudart-missing", r"(?P<lib>libcublas(?:Lt)?\.so\.1[12]\S*): cannot open shared object file", when="no-torch-lib"),
    R("torchvision-mismatch", r"operator torchvision::(?P<op>\w+) does not exist"),
    R("torchvision-mismatch", r"partially initialized module 'torchvision' has no attribute"),
    # DeepSpeed's prebuilt ops (Windows wheels) for another torch
    R("extension-abi-mismatch", r"PyTorch version mismatch! (?P<module>DeepSpeed) ops were compiled"),
    R("deepspeed-op-build", r"DeepSpeed Op Builder: Installed CUDA version (?P<nvcc>\d+\.\d+) does not match"),
    R("extension-abi-mismatch", r"(?P<module>xFormers) was built for:\s*PyTorch (?P<built>[\w.+]+)"),
    R("extension-abi-mismatch", r"(?P<module>xFormers) can't load C\+\+/CUDA extensions"),
    R("extension-abi-mismatch", r"(?P<module>)PyTorch (?P<built>[\w.+]+)\s+with\s+CUDA \d+ \(you have (?P<have>[\w.+]+)\)"),
    R("extension-abi-mismatch", r"(?P<module>flash_attn\w*)\.\S*: undefined symbol"),
    R("nvcc-mismatch", r"Installed CUDA version (?P<nvcc>\d+\.\d+) does not match the version torch was compiled with "
      r"(?P<torch_cuda>\d+\.\d+)"),
    R("nvcc-mismatch", r"The detected CUDA version \((?P<nvcc>\d+\.\d+)\) mismatches the version that was used to "
      r"compile\s*PyTorch \((?P<torch_cuda>\d+\.\d+)\)"),
    R("cudnn-mismatch", r"cuDNN version incompatibility: PyTorch was compiled\s+against (?P<compiled>\([\d, ]+\)) but "
      r"(?:found runtime version|linked against) (?P<linked>\([\d, ]+\))"),
    R("extension-abi-mismatch", r"(?P<module>flash_attn\w*|xformers\w*|vllm\w*|causal_conv1d\w*|selective_scan\w*|"
      r"mamba_ssm\w*|apex\w*|deepspeed\w*|\w+_C)(?:\.cpython-[\w-]+|\.abi3)?\.(?:so|pyd): undefined symbol"),
    # the same, with the message wrapped after "undefined" by the paste
    R("extension-abi-mismatch", r"(?P<module>flash_attn\w*|xformers\w*|vllm\w*|\w+_C)(?:\.cpython-[\w-]+|\.abi3)?\.(?:so|pyd): "
      r"undefined\s*$"),
    R("flash-attn-unsupported", r"FlashAttention only supports Ampere GPUs or newer"),
    R("flash-attn-unsupported", r"FlashAttention2? (?:has been toggled on, but it )?(?:is not supported|cannot be used)"
      r".*(?:Turing|Volta|Ampere)"),
    R("bf16-unsupported", r"doesn't support bf16"),
    R("bf16-unsupported", r"Bfloat16 is only supported on GPUs with compute capability of at least 8\.?0"),
    R("bf16-unsupported", r"bf16 .*requires.*(?:Ampere|compute capability)"),
    R("deepspeed-op-build", r"cpu_adam(?:\.so)?: cannot open shared object file"),
    R("deepspeed-op-build", r"Error building extension '(?P<op>cpu_adam|fused_adam|cpu_adagrad|transformer_inference|"
      r"\w+_op)'"),
    R("deepspeed-op-build", r"'DeepSpeedCPUAdam' object has no attribute 'ds_opt_adam'"),
    # --- memory
    R("cuda-oom", r"CUDA out of memory\. Tried to allocate (?P<tried>[\d.]+ [GMK]iB)"
      r"(?: \(GPU (?P<gpu>\d+); (?P<total>[\d.]+ [GMK]iB) total capacity; (?P<alloc>[\d.]+ [GMK]iB) already allocated; "
      r"(?P<free>[\d.]+ [GMK]iB) free)?(?:\. GPU (?P<gpu2>\d+) has a total capac\w* of (?P<total2>[\d.]+ [GMK]iB) of "
      r"which (?P<free2>[\d.]+ (?:[GMK]iB|bytes)) is free)?"),
    R("cuda-oom", r"(?:torch\.(?:cuda\.)?)?OutOfMemoryError: CUDA out of memory\.?\s*$"),
    R("cuda-oom", r"CUDA error: out of memory"),
    # --- bitsandbytes
    R("bnb-no-gpu-binary", r"CUDA Setup failed despite (?:GPU|CUDA) being available"),
    R("bnb-no-gpu-binary", r"bitsandbytes was compiled without GPU support"),
    R("bnb-no-gpu-binary", r"libbitsandbytes_cpu\.(?:so|dll): undefined symbol: (?P<symbol>\w+)"),
    R("bnb-no-gpu-binary", r"Could not find the bitsandbytes CUDA binary at (?P<path>\S+?libbitsandbytes_cuda(?P<bnb_cuda>\d+)"
      r"\.(?:so|dll))"),
    R("bnb-no-gpu-binary", r"Library not found: (?P<path>\S*libbitsandbytes_cuda(?P<bnb_cuda>\d+)\.(?:so|dll))"),
    R("bnb-no-gpu-binary", r"^\s*(?:CUDA SETUP: Loading binary|bin) (?P<path>\S*libbitsandbytes_cpu\.(?:so|dll))",
      key="libbitsandbytes_cpu."),
    # --- Windows and platform
    R("win-libuv", r"use_libuv was requested but PyTorch was buil[dt] without libuv support"),
    # the same message on Linux is a torch built without NCCL (a source or distro build), not Windows
    R("win-no-nccl", r"Distributed package doesn't have NCCL built in", when="not-linux"),
    R("torch-no-nccl", r"Distributed package doesn't have NCCL built in", when="linux"),
    R("win-triton", r"No module named '?triton'?", when="windows"),
    R("win-triton", r"Cannot find a working triton installation", when="windows"),
    # PyPI has triton wheels for Linux only: "from versions: none" for it means Windows (or macOS), unless the
    # report says Linux (then it is an unsupported Python or CPU, not this)
    R("win-triton", r"(?:No matching distribution found for|Could not find a version that satisfies the "
      r"requirement) triton\b(?![-_])", when="not-linux"),
    # WinError 1455: out of virtual memory (commit limit) while a process maps torch's CUDA DLLs, typically
    # several DataLoader workers each loading cuBLAS/cuDNN; the English and a Chinese-locale console's text
    R("win-pagefile-small", r"\[WinError 1455\]"),
    R("win-pagefile-small", r"paging file is too small for this operation"),
    R("win-pagefile-small", r"页面文件太小"),
    R("win-symlinks", r"cache-system uses symlinks by default .* your machine does not support them"),
    R("win-long-paths", r"does not have Windows Long Path support enabled"),
]

COMPILED = [(row, re.compile(row.pattern, re.I)) for row in TABLE]
def _key(pattern: str) -> str | None:
    """The longest literal run a match of `pattern` must contain (lowercased, outside groups and classes, not made
    optional by a quantifier), or None when there is none of 4+ characters (such a row is always searched)."""
    runs, cur, depth, i = [], "", 0, 0
    while i < len(pattern):
        c = pattern[i]
        nxt = pattern[i + 1] if i + 1 < len(pattern) else ""
        if c == "\\":
            lit = nxt if nxt in ".()[]{}?*+|\\-'/ " else None
            i += 2
            if depth == 0 and lit and pattern[i:i + 1] not in ("?", "*", "{"):
                cur += lit
            else:
                runs.append(cur)
                cur = ""
            continue
        if c == "[":
            j = i + 1
            while j < len(pattern) and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            runs.append(cur)
            cur, i = "", j + 1
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            return None
        if depth == 0 and c not in "()^$.+*?{}|" and nxt not in ("?", "*", "{"):
            cur += c
        else:
            runs.append(cur)
            cur = ""
        i += 1
    runs.append(cur)
    best = max(runs, key=len).lower()
    return best if len(best.strip()) >= 4 else None


# the literal each row's match must contain: a row's regex runs only on lines that hold it (a substring test)
KEYS = [row.key or _key(row.pattern) for row in TABLE]
SHAPE_KEYS = [shape_of(k) if k else None for k in KEYS]  # the same, as a line's shape holds it
# per id, at most this many lines are kept: a training log repeating a warning every step adds nothing after that
PER_ID = 20
_UNITS = {"bytes": 1 / 1024**3, "KiB": 1 / 1024 / 1024, "MiB": 1 / 1024, "GiB": 1.0}


def _gib(s: str | None) -> float | None:
    if not s:
        return None
    num, unit = s.split()
    return round(float(num) * _UNITS[unit], 2)


def _data(row: Row, m: re.Match) -> dict:
    g = {k: v.strip() for k, v in m.groupdict().items() if v}
    d: dict = {}
    if row.id == "torch-arch-unsupported":
        if "sm" in g:
            sm = g["sm"]
            d["capability"] = f"{sm[:-1]}.{sm[-1]}"
        if "cc" in g:
            d["capability"] = g["cc"]
        if "gpu" in g:
            d["gpu"] = g["gpu"]
    elif row.id == "driver-too-old" and "found_raw" in g:
        n = int(g["found_raw"])
        d["found_version"] = n
        d["found"] = f"{n // 1000}.{(n % 1000) // 10}"
    elif row.id == "driver-too-old" and "804" in m.group(0):
        d["forward_compat"] = True
    elif row.id == "driver-too-old" and "unsupported display driver" in m.group(0).lower():
        d["e803"] = True
    elif row.id == "cuda-oom":
        for key, *names in (("tried_gib", "tried"), ("total_gib", "total", "total2"), ("free_gib", "free", "free2"),
                            ("allocated_gib", "alloc")):
            val = next((g[n] for n in names if n in g), None)
            if val:
                d[key] = _gib(val)
        if "gpu" in g or "gpu2" in g:
            d["gpu_index"] = int(g.get("gpu") or g["gpu2"])
    elif row.id == "extension-abi-mismatch":
        mod = g.get("module", "").lower()
        if g.get("built"):
            d["built_for"] = g["built"]
        if g.get("have"):
            d["have"] = g["have"]
        mod = mod or "xformers"
        d["module"] = mod
        d["package"] = ("flash-attn" if mod.startswith("flash_attn") else mod.split("_")[0] if mod.endswith("_C")
                        else mod.replace("_", "-"))
    elif row.id == "torch-import-dll":
        if g.get("winerror"):
            d["winerror"] = int(g["winerror"])
        dll = g.get("dll") or g.get("dll2")
        if dll:
            d["dll"] = re.split(r"[\\/]", dll)[-1]
    else:
        d.update(g)
    return d


def scan(report: Report, source: str) -> list[tuple[Row, Signature]]:
    """All signature rows that match, in order; one Signature per (id, line), a line repeated word for word counted
    once, at most PER_ID lines per id. Linear in the lines, and cheap per line: each distinct line once, and a row's
    regex only on lines that hold its literal key (KEYS). Which keys a line can hold is decided once per shape
    (digits as 0: a step counter or a progress bar is one shape), then checked on the line itself."""
    out = []
    per_id: dict[str, int] = {}
    rows = list(zip(TABLE, (rx for _, rx in COMPILED), KEYS, SHAPE_KEYS))
    full: set[str] = set()  # ids with PER_ID lines: no longer searched
    by_shape: dict[bytes, list] = {}
    any_key = re.compile(b"|".join(re.escape(k) for k in SHAPE_KEYS if k))
    texts, nos = report.texts, report.nos
    # a shape that holds no row's key now never will (rows are only dropped): its lines are not visited at all
    always = any(k is None for k in SHAPE_KEYS)  # a row without a key is searched on every line
    keyed = {shape for shape in dict.fromkeys(report.shapes) if always or any_key.search(shape)}
    for i, shape in [(i, shape) for i, shape in zip(report.distinct, report.shapes) if shape in keyed]:
        t = texts[i]
        if len(t) < 10:
            continue
        cands = by_shape.get(shape)
        if cands is None:
            cands = by_shape[shape] = [r for r in rows if r[3] is None or r[3] in shape]
        if not cands:
            continue
        low = t.lower()
        ids_here: set[str] = set()
        for row, rx, key, _ in cands:
            if row.id in full or (key is not None and key not in low) or row.id in ids_here:
                continue
            m = rx.search(t)
            if not m:
                continue
            sid = row.id
            if sid == "torch-import-dll" and "bitsandbytes" in low:
                sid = "bnb-no-gpu-binary"  # a bitsandbytes DLL that does not load is bnb's problem, not torch's
            weak = (sid == "torch-import-dll" and "winerror" in low
                    and not ("torch" in low or m.groupdict().get("dll") or m.groupdict().get("dll2")))
            ids_here.add(row.id)
            n = per_id.get(row.id, 0)
            if n >= PER_ID:
                continue
            per_id[row.id] = n + 1
            if n + 1 == PER_ID:  # this id is done: stop searching for it from the next line on
                full.add(row.id)
                rows = [r for r in rows if r[0].id != row.id]
                by_shape = {}
            data = _data(row, m)
            if weak:  # a truncated or translated WinError line: torch's if the report is about torch
                data["needs_torch"] = True
            out.append((row, Signature(id=sid, line=t.strip()[:500], source=f"{source}:{nos[i]}", data=data)))
    return out


RANGE = re.compile(r"Minimum and Maximum cuda capability supported by this version of PyTorch is\s*"
                   r"\((\d+)\.(\d+)\)\s*-\s*\((\d+)\.(\d+)\)", re.I)


class Scope:
    """What the conditions read from the whole report, computed once per report (not once per matched line: a log
    that repeats a recognised warning on every step would otherwise be scanned once per line, quadratic). Given a
    Report, it reads its distinct lines, and searches only where a cheap test finds the words."""

    def __init__(self, text: "str | Report"):
        if isinstance(text, Report):
            body, has = text.text, text.has
        else:
            body = text
            low_text = text.lower()
            has = lambda *ws: any(w.lower() in low_text for w in ws)  # noqa: E731
        m = RANGE.search(body) if has("Minimum and Maximum cuda capability supported") else None
        self.range = ((int(m.group(1)), int(m.group(2))), int(m.group(3))) if m else None
        self.mig = has("mig")
        self.torch = has("torch", "_load_dll_libraries") and bool(
            re.search(r"\btorch\b|_load_dll_libraries|site-packages[\\/]torch", body, re.I))
        # torch's own wheels ship libcublas; a missing one under torch/lib is torch's install, not a CUDA runtime
        self.torch_lib = has("lib/libcublas", "lib\\libcublas") and bool(
            re.search(r"torch[\\/]lib[\\/]libcublas", body, re.I))


def holds(when: str | None, facts: Facts, text: "str | Scope", sig: Signature | None = None) -> bool:
    scope = text if isinstance(text, Scope) else Scope(text)
    if sig is not None and sig.data.pop("needs_torch", False) and not scope.torch:
        return False
    if when is None:
        return True
    if when == "outside-range":
        # the 2.8+ warning names the range; a GPU inside it (same major as a built arch, not older than the
        # minimum) runs by binary compatibility, e.g. GB10 sm_121 on sm_120 kernels
        cc = (sig.data.get("capability") if sig else None) or ""
        if scope.range is None or not re.match(r"^\d+\.\d+$", cc):
            return True
        lo, hi_major = scope.range
        major, minor = (int(x) for x in cc.split("."))
        return not ((major, minor) >= lo and major <= hi_major)
    if when == "windows":
        return facts.platform.system == "Windows"
    if when == "not-linux":
        return facts.platform.system != "Linux"
    if when == "linux":
        return facts.platform.system == "Linux"
    if when == "wsl":
        return bool(facts.platform.is_wsl)
    if when == "mig":
        return scope.mig
    if when == "no-torch-lib":
        return not scope.torch_lib
    return True
