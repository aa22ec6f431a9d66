"""Probes against real child processes and fake tools: a torch that aborts, hangs, cannot load a DLL or is a CPU
build; a bitsandbytes that crashes after torch answered; NVML failure classes; nvidia-smi output and failures."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

from tunedoc.doctor.facts import Facts
from tunedoc.doctor.probes import nvidia, pyenv, system, toolkit

PY = sys.executable
FIXTURES = Path(__file__).parent / "fixtures" / "probe"


def fake_packages(tmp_path: Path, monkeypatch, **modules: str) -> None:
    """Put fake packages (name -> __init__.py source) first on the child's sys.path via PYTHONPATH."""
    root = tmp_path / "site"
    for name, src in modules.items():
        pkg = root / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text(textwrap.dedent(src))
    monkeypatch.setenv("PYTHONPATH", str(root))


def probe(timeout: float = 60):
    facts = Facts()
    ts, bs = pyenv.probe_torch_bnb(facts, PY, timeout=timeout)
    return facts, ts, bs


# --- torch in a child process --------------------------------------------------------------------------------------
def test_torch_that_aborts_on_import_is_a_fact_not_a_crash(tmp_path, monkeypatch):
    fake_packages(tmp_path, monkeypatch, torch="import os\nos.abort()\n")
    facts, ts, bs = probe()
    assert not ts.ok and ts.exit_code is not None and ts.exit_code < 0
    assert facts.torch.import_ok is False
    assert facts.torch.import_error_kind == "segfault"
    assert "SIGABRT" in facts.torch.import_error
    assert not bs.ok and "torch does not import" in bs.error


def test_torch_that_hangs_is_killed_at_the_timeout(tmp_path, monkeypatch):
    fake_packages(tmp_path, monkeypatch, torch="import time\nwhile True:\n    time.sleep(1)\n")
    t0 = time.monotonic()
    facts, ts, _ = probe(timeout=3)
    assert time.monotonic() - t0 < 15
    assert ts.timed_out and not ts.ok
    assert facts.torch.import_error_kind == "timeout"
    assert "hung" in facts.torch.import_error


def test_torch_hang_kills_grandchildren_too(tmp_path, monkeypatch):
    # torch that starts a helper process and hangs: the whole process group goes at the timeout
    marker = tmp_path / "grandchild.pid"
    fake_packages(tmp_path, monkeypatch, torch=f"""
        import subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        open({str(marker)!r}, "w").write(str(p.pid))
        time.sleep(300)
    """)
    _, ts, _ = probe(timeout=4)
    assert ts.timed_out
    pid = int(marker.read_text())
    for _ in range(50):  # the kill is asynchronous; give init a moment to reap it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        if Path(f"/proc/{pid}/stat").exists() and ") Z" in Path(f"/proc/{pid}/stat").read_text():
            break  # a zombie is dead, waiting to be reaped
        time.sleep(0.1)
    else:
        pytest.fail(f"grandchild {pid} still alive after the timeout")


def test_torch_dll_error_is_classified(tmp_path, monkeypatch):
    fake_packages(tmp_path, monkeypatch, torch="""
        raise OSError('[WinError 126] The specified module could not be found. Error loading '
                      '"C:\\\\Python311\\\\Lib\\\\site-packages\\\\torch\\\\lib\\\\fbgemm.dll" or one of its dependencies.')
    """)
    facts, ts, _ = probe()
    assert facts.torch.import_ok is False
    assert facts.torch.import_error_kind == "dll"
    assert "fbgemm.dll" in facts.torch.import_error
    from tunedoc.doctor.rules import evaluate

    ids = [f.id for f in evaluate(facts)]
    assert "torch-import-dll" in ids


def test_missing_shared_object_is_a_dll_error(tmp_path, monkeypatch):
    fake_packages(tmp_path, monkeypatch, torch="""
        raise ImportError('libcudnn.so.9: cannot open shared object file: No such file or directory')
    """)
    facts, _, _ = probe()
    assert facts.torch.import_error_kind == "dll"
    assert "libcudnn.so.9" in facts.torch.import_error


CPU_TORCH = """
    __version__ = "2.7.0+cpu"
    __file__ = __file__
    class version:
        cuda = None
        hip = None
    class _Cuda:
        @staticmethod
        def is_available():
            return False
        @staticmethod
        def get_arch_list():
            return []
    cuda = _Cuda()
"""


def test_cpu_build_torch_is_reported_as_such(tmp_path, monkeypatch):
    fake_packages(tmp_path, monkeypatch, torch=CPU_TORCH)
    facts, ts, _ = probe()
    assert ts.ok, ts
    t = facts.torch
    assert t.import_ok and t.version == "2.7.0+cpu" and t.cuda is None
    assert t.cuda_available is False and t.devices == [] and t.arch_list == []


def test_bitsandbytes_crash_keeps_the_torch_facts(tmp_path, monkeypatch):
    fake_packages(tmp_path, monkeypatch, torch=CPU_TORCH, bitsandbytes="import os\nos.abort()\n")
    facts, ts, bs = probe()
    assert ts.ok and facts.torch.version == "2.7.0+cpu"
    assert not bs.ok and facts.bnb.import_ok is False
    assert "SIGABRT" in facts.bnb.import_error


def test_bitsandbytes_import_error_is_recorded(tmp_path, monkeypatch):
    fake_packages(tmp_path, monkeypatch, torch=CPU_TORCH,
                  bitsandbytes="raise RuntimeError('CUDA Setup failed despite GPU being available.')\n")
    facts, _, _ = probe()
    assert facts.bnb.installed and facts.bnb.import_ok is False
    assert "CUDA Setup failed" in facts.bnb.import_error


def test_real_torch_and_bnb_on_this_machine():
    """The installed CPU torch 2.13 and bitsandbytes 0.50.2: versions, CPU build, the CPU native library."""
    facts, ts, bs = probe(timeout=120)
    assert ts.ok and bs.ok, (ts, bs)
    assert facts.torch.version.startswith("2.") and facts.torch.import_ok
    assert facts.torch.cuda_available in (True, False)
    assert facts.bnb.version and facts.bnb.import_ok
    if not facts.torch.cuda_available:
        assert facts.bnb.lib_kind == "cpu" and "cpu" in facts.bnb.native_lib


def test_a_target_python_that_does_not_exist(tmp_path):
    facts = Facts()
    ts, bs = pyenv.probe_torch_bnb(facts, str(tmp_path / "nope" / "python"), timeout=5)
    assert not ts.ok and "cannot run the target Python" in ts.error
    st = pyenv.probe_python(facts, str(tmp_path / "nope" / "python"), timeout=5)
    assert not st.ok and "nope" in st.error


# --- the target Python's packages -------------------------------------------------------------------------------------
def test_python_probe_lists_packages_fast_without_importing_them():
    facts = Facts()
    t0 = time.monotonic()
    st = pyenv.probe_python(facts, PY, timeout=30)
    assert st.ok, st
    assert time.monotonic() - t0 < 10
    p = facts.python
    assert p.version == ".".join(map(str, sys.version_info[:3]))
    assert p.is_venv is True  # the project's .venv
    assert "torch" in p.packages and "bitsandbytes" in p.packages and "textual" in p.packages
    assert p.package_locations["torch"].endswith("site-packages")
    assert facts.torch.installed is True


def test_python_probe_of_an_interpreter_without_torch(tmp_path):
    # a fresh venv without site packages: the classic "installed into another Python" case
    import venv

    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env)
    py = str(env / "bin" / "python")
    facts = Facts()
    st = pyenv.probe_python(facts, py, timeout=30)
    assert st.ok
    assert facts.python.is_venv and "torch" not in facts.python.packages
    assert facts.torch.installed is False
    ts, _ = pyenv.probe_torch_bnb(facts, py, timeout=30)
    assert facts.torch.installed is False and facts.torch.import_error_kind == "module_not_found"
    from tunedoc.doctor.rules import evaluate

    assert "torch-missing" in [f.id for f in evaluate(facts)]


# --- NVML ---------------------------------------------------------------------------------------------------------------
class _NVMLError(Exception):
    def __init__(self, value):
        self.value = value
        super().__init__({1: "Uninitialized", 9: "Driver Not Loaded", 12: "NVML Shared Library Not Found",
                          18: "RM has detected an NVML/RM version mismatch.", 4: "Insufficient Permissions",
                          13: "Function Not Found"}.get(value, "Unknown Error"))


def fake_pynvml(monkeypatch, init_error: int | None = None, gpus: int = 0):
    m = types.ModuleType("pynvml")
    m.NVMLError = _NVMLError
    m.NVML_ERROR_DRIVER_NOT_LOADED = 9
    m.NVML_ERROR_LIBRARY_NOT_FOUND = 12
    m.NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
    m.NVML_ERROR_NO_PERMISSION = 4
    m.NVML_ERROR_FUNCTION_NOT_FOUND = 13
    m.NVML_ERROR_NOT_FOUND = 6
    m.NVML_TEMPERATURE_GPU = 0

    def init():
        if init_error is not None:
            raise _NVMLError(init_error)

    m.nvmlInit = init
    m.nvmlShutdown = lambda: None
    m.nvmlSystemGetDriverVersion = lambda: "570.86.10"
    m.nvmlSystemGetCudaDriverVersion_v2 = lambda: 12080
    m.nvmlDeviceGetCount = lambda: gpus
    m.nvmlDeviceGetHandleByIndex = lambda i: i
    m.nvmlDeviceGetName = lambda h: b"NVIDIA GeForce RTX 4090"
    m.nvmlDeviceGetUUID = lambda h: f"GPU-{h:08d}"
    m.nvmlDeviceGetPciInfo = lambda h: types.SimpleNamespace(busId=b"00000000:01:00.0")
    m.nvmlDeviceGetCudaComputeCapability = lambda h: (8, 9)
    m.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=24564 * 2**20, free=23000 * 2**20,
                                                                used=1564 * 2**20)

    def mig(h):
        raise _NVMLError(3)  # not supported on GeForce: the probe keeps going

    m.nvmlDeviceGetMigMode = mig
    m.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=7)
    m.nvmlDeviceGetTemperature = lambda h, s: 41
    m.nvmlDeviceGetPowerUsage = lambda h: 35000
    m.nvmlDeviceGetEnforcedPowerLimit = lambda h: 450000
    m.nvmlDeviceGetPersistenceMode = lambda h: 0
    monkeypatch.setitem(sys.modules, "pynvml", m)


@pytest.mark.parametrize("code, cls, present", [
    (12, "library_not_found", False),
    (9, "driver_not_loaded", True),
    (18, "lib_rm_mismatch", True),
    (4, "no_permission", None),
    (13, "function_not_found", None),
    (999, "unknown", None),
])
def test_each_nvml_failure_class_is_named(monkeypatch, code, cls, present):
    fake_pynvml(monkeypatch, init_error=code)
    facts = Facts()
    nvidia.probe_nvml(facts)
    assert facts.driver.nvml_error == cls
    assert facts.driver.present is present
    assert facts.driver.nvml_error_text
    assert facts.gpus is None  # unknown, not "no GPUs"


def test_nvml_rm_mismatch_becomes_the_catalog_finding(monkeypatch):
    fake_pynvml(monkeypatch, init_error=18)
    facts = Facts()
    nvidia.probe_nvml(facts)
    from tunedoc.doctor.rules import evaluate

    assert "driver-library-mismatch" in [f.id for f in evaluate(facts)]


def test_nvml_reads_every_gpu(monkeypatch):
    fake_pynvml(monkeypatch, gpus=2)
    facts = Facts()
    nvidia.probe_nvml(facts)
    d = facts.driver
    assert d.present and d.loaded and d.version == "570.86.10" and d.cuda_version == "12.8"
    assert [g.index for g in facts.gpus] == [0, 1]
    g = facts.gpus[0]
    assert g.name == "NVIDIA GeForce RTX 4090" and g.compute_capability == "8.9"
    assert g.memory_total_mb == 24564 and g.memory_free_mb == 23000
    assert g.mig_mode is None  # the query failed: unknown, and the probe went on
    assert g.temperature_c == 41 and g.power_w == 35.0 and g.power_limit_w == 450.0


# --- nvidia-smi -----------------------------------------------------------------------------------------------------
def fake_tool(tmp_path: Path, monkeypatch, name: str, script: str) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    exe = bindir / name
    exe.write_text("#!/bin/sh\n" + textwrap.dedent(script))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return exe


@pytest.mark.skipif(sys.platform == "win32", reason="fake tools are shell scripts")
def test_nvidia_smi_query_is_parsed(tmp_path, monkeypatch):
    csv = (FIXTURES / "nvidia-smi-query-2gpu.csv").read_text()
    plain = (FIXTURES / "nvidia-smi-plain.txt").read_text()
    (tmp_path / "q.csv").write_text(csv)
    (tmp_path / "plain.txt").write_text(plain)
    fake_tool(tmp_path, monkeypatch, "nvidia-smi", f"""
        case "$1" in --query-gpu=*) cat {tmp_path}/q.csv ;; *) cat {tmp_path}/plain.txt ;; esac
    """)
    facts = Facts()
    nvidia.probe_nvidia_smi(facts, timeout=10)
    d = facts.driver
    assert d.present and d.version == "570.124.06" and d.cuda_version == "12.8"
    assert [g.name for g in facts.gpus] == ["NVIDIA GeForce RTX 5090", "NVIDIA A100-SXM4-80GB"]
    assert facts.gpus[0].compute_capability == "12.0" and facts.gpus[0].memory_total_mb == 32607
    assert facts.gpus[1].mig_mode is True and facts.gpus[0].mig_mode is None  # [N/A]: no MIG on GeForce


@pytest.mark.skipif(sys.platform == "win32", reason="fake tools are shell scripts")
def test_nvidia_smi_failure_text_is_kept(tmp_path, monkeypatch):
    fake_tool(tmp_path, monkeypatch, "nvidia-smi", """
        echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."
        exit 9
    """)
    facts = Facts()
    nvidia.probe_nvidia_smi(facts, timeout=10)
    assert "couldn't communicate with the NVIDIA driver" in facts.driver.nvidia_smi_error
    assert facts.gpus is None


@pytest.mark.skipif(sys.platform == "win32", reason="fake tools are shell scripts")
def test_nvidia_smi_that_hangs_times_out(tmp_path, monkeypatch):
    fake_tool(tmp_path, monkeypatch, "nvidia-smi", "sleep 60\n")
    facts = Facts()
    t0 = time.monotonic()
    nvidia.probe_nvidia_smi(facts, timeout=1)
    assert time.monotonic() - t0 < 10
    assert "did not answer within 1 s" in facts.driver.nvidia_smi_error


# --- toolkit, platform, env, HF cache ---------------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="fake tools are shell scripts")
def test_nvcc_version_is_read(tmp_path, monkeypatch):
    out = (FIXTURES / "nvcc-12.4.txt").read_text()
    (tmp_path / "nvcc.txt").write_text(out)
    fake_tool(tmp_path, monkeypatch, "nvcc", f"cat {tmp_path}/nvcc.txt\n")
    monkeypatch.setenv("CUDA_HOME", "/opt/cuda-12.4")
    facts = Facts()
    toolkit.probe_toolkit(facts, timeout=10)
    assert facts.toolkit.nvcc_version == "12.4"
    assert facts.toolkit.nvcc_path.endswith("bin/nvcc") and facts.toolkit.cuda_home == "/opt/cuda-12.4"


def test_platform_probe_on_this_machine():
    facts = Facts()
    system.probe_platform(facts)
    p = facts.platform
    assert p.system == {"linux": "Linux", "win32": "Windows", "darwin": "Darwin"}[sys.platform]
    assert p.machine and p.shell
    assert p.symlinks_supported in (True, False)
    if sys.platform == "linux":
        assert p.is_wsl in (True, False) and p.in_container in (True, False)
        assert isinstance(p.pci_nvidia_devices, int)


def test_env_probe_keeps_what_matters_and_never_the_token(monkeypatch):
    secret = "hf_" + "a1B2c3D4" * 5
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/usr/local/cuda-12.4/lib64:/opt/other")
    facts = Facts()
    system.probe_env(facts)
    system.probe_hf(facts)
    assert facts.env.vars["CUDA_VISIBLE_DEVICES"] == "1,0"
    assert facts.env.vars["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    assert facts.env.hf_token_set is True and facts.hf.token_present is True
    assert "LD_LIBRARY_PATH: /usr/local/cuda-12.4/lib64" in facts.env.cuda_path_entries
    assert all("/opt/other" not in e for e in facts.env.cuda_path_entries)
    assert secret not in facts.to_json()


def test_hf_cache_that_does_not_exist_yet_reports_the_parent_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "not" / "yet" / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    facts = Facts()
    system.probe_hf(facts)
    h = facts.hf
    assert h.hub_cache == str(tmp_path / "not" / "yet" / "hf" / "hub")
    assert h.disk_free_bytes > 0 and h.disk_total_bytes >= h.disk_free_bytes
    assert h.cache_bytes == 0 and h.token_present is False


def test_probe_facts_round_trip_through_json(tmp_path, monkeypatch):
    fake_pynvml(monkeypatch, gpus=1)
    facts = Facts()
    nvidia.probe_nvml(facts)
    system.probe_platform(facts)
    again = Facts.from_json(json.dumps(facts.to_dict()))
    assert again == facts
