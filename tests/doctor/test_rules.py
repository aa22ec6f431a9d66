"""Rules as tables: facts of a machine (built in code) -> the findings a user sees, with exact fix commands."""

from __future__ import annotations

import pytest

from tunedoc.doctor.facts import GPU, Facts, ProbeStatus, Signature
from tunedoc.doctor.rules import evaluate
from tunedoc.doctor.rules.catalog import CATALOG

PY = "/home/u/venv/bin/python"
WIN_PY = r"C:\Users\x\venv\Scripts\python.exe"
CU = "https://download.pytorch.org/whl"

ARCH_CU124 = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]
ARCH_CU128_27 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
ARCH_CU128_28 = ["sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]


def gpu(name, cc, mb, index=0):
    return GPU(index=index, name=name, compute_capability=cc, memory_total_mb=mb, memory_free_mb=mb - 500)


def box(system="Linux", distro="Ubuntu 22.04.4 LTS", gpus=(), driver=None, driver_cuda=None, torch=None,
        torch_cuda=None, arch=None, bnb=None, bnb_lib="cuda", exe=PY, **platform) -> Facts:
    """A machine. gpus: GPU rows; driver: version or None (no driver); torch: version or None (not installed)."""
    f = Facts()
    p = f.platform
    p.system, p.distro, p.machine = system, distro, "x86_64"
    p.pci_nvidia_devices = len(gpus) if system == "Linux" and not platform.get("is_wsl") else None
    for k, v in platform.items():
        setattr(p, k, v)
    f.gpus = list(gpus) if driver else None
    f.driver.present = bool(driver)
    if driver:
        f.driver.version, f.driver.cuda_version, f.driver.source = driver, driver_cuda, "nvml"
    else:
        f.driver.nvml_error, f.driver.nvml_error_text = "library_not_found", "NVML Shared Library Not Found"
    f.python.executable, f.python.version = exe, "3.11.9"
    f.probes["python"] = ProbeStatus(name="python")
    f.torch.installed = torch is not None
    if torch:
        f.torch.import_ok, f.torch.version, f.torch.cuda = True, torch, torch_cuda
        f.torch.arch_list = arch
        f.torch.cuda_available = bool(torch_cuda and driver)
        f.torch.device_count = len(gpus) if f.torch.cuda_available else 0
        f.python.packages["torch"] = torch
    if bnb:
        f.bnb.installed, f.bnb.import_ok, f.bnb.version, f.bnb.lib_kind = True, True, bnb, bnb_lib
        f.bnb.native_lib = f"libbitsandbytes_{bnb_lib}.so"
        f.bnb.quant_ok = True if bnb_lib == "cuda" and f.torch.cuda_available else None
        f.python.packages["bitsandbytes"] = bnb
    elif torch:
        f.bnb.installed = False
    return f


def ids(findings, *severities):
    return {f.id for f in findings if not severities or f.severity in severities}


def one(findings, id):
    got = [f for f in findings if f.id == id]
    assert len(got) == 1, f"want one {id}, got {[f.id for f in findings]}"
    return got[0]


def all_commands(finding):
    return [c for fx in finding.fixes for c in fx.commands]


# --- the machines the brief names -------------------------------------------------------------------------------
def this_machine() -> Facts:
    """No GPU, a docker container, nvcc 13.0, a CPU torch 2.13.0, bitsandbytes with its CPU library."""
    f = box(distro="Debian GNU/Linux 12 (bookworm)", torch="2.13.0+cpu", bnb="0.50.2", bnb_lib="cpu",
            in_container=True, container_kind="docker")
    f.toolkit.nvcc_path, f.toolkit.nvcc_version = "/usr/local/bin/nvcc", "13.0"
    f.probes["toolkit"] = ProbeStatus(name="toolkit")
    f.hf.hub_cache, f.hf.endpoint, f.hf.disk_free_bytes = "/root/.cache/huggingface/hub", "https://huggingface.co", 80 << 30
    return f


def test_no_gpu_box_gets_no_error_and_a_plain_next_step():
    fs = evaluate(this_machine())
    assert not ids(fs, "error"), [(f.id, f.title) for f in fs]
    ng = one(fs, "no-gpu")
    assert ng.severity == "warning" and "CPU" in ng.title
    assert all_commands(ng) == ["tunedoc demo"]
    assert {"torch-ok", "bnb-ok", "cuda-ok", "hf-ok", "platform-ok"} <= ids(fs)
    assert "no-driver" not in ids(fs) and "container-no-gpu" not in ids(fs)


def test_platform_line_leaves_out_what_the_facts_do_not_say():
    f = this_machine()
    f.platform.is_wsl, f.platform.container_kind, f.platform.release = True, None, None
    ok = one(evaluate(f), "platform-ok")
    assert ok.title == "WSL2 (Debian GNU/Linux 12 (bookworm)), in a container, x86_64" and ok.evidence == ["Linux"]
    f.platform.container_kind, f.platform.release = "docker", "5.15.153.1-microsoft-standard-WSL2"
    ok = one(evaluate(f), "platform-ok")
    assert ok.title.endswith("in a docker container, x86_64")
    assert ok.evidence == ["Linux 5.15.153.1-microsoft-standard-WSL2"]

def rtx5090(**kw) -> Facts:
    args = dict(gpus=[gpu("NVIDIA GeForce RTX 5090", "12.0", 32607)], driver="570.86.10", driver_cuda="12.8",
                torch="2.7.1+cu128", torch_cuda="12.8", arch=ARCH_CU128_27, bnb="0.45.3")
    args.update(kw)
    return box(**args)


def test_healthy_rtx50_box_gets_no_error_or_warning():
    fs = evaluate(rtx5090())
    assert not ids(fs, "error", "warning"), [(f.id, f.title) for f in fs]
    assert {"driver-ok", "gpu-ok", "torch-ok", "bnb-ok"} <= ids(fs, "ok")
    assert "RTX 5090" in one(fs, "gpu-ok").title


def test_healthy_rtx50_on_windows_powershell():
    fs = evaluate(rtx5090(system="Windows", distro=None, driver="576.02", driver_cuda="12.9", exe=WIN_PY,
                          bnb="0.48.1"))
    assert not ids(fs, "error", "warning"), [(f.id, f.title) for f in fs]


def test_rtx5090_with_torch_251_cu124_gets_the_cu128_fix():
    fs = evaluate(rtx5090(torch="2.5.1+cu124", torch_cuda="12.4", arch=ARCH_CU124, bnb="0.45.3"))
    f = one(fs, "torch-arch-unsupported")
    assert f.severity == "error" and "sm_120" in f.title
    assert all_commands(f) == [f"{PY} -m pip install --upgrade torch==2.11.0 --index-url {CU}/cu128"]
    assert f.fixes[0].applicable
    assert fs[0].severity == "error"  # errors first


def test_rtx5090_with_old_driver_also_gets_the_driver_floor():
    fs = evaluate(rtx5090(torch="2.5.1+cu124", torch_cuda="12.4", arch=ARCH_CU124, driver="550.54.15",
                          driver_cuda="12.4"))
    f = one(fs, "torch-arch-unsupported")
    driver, torch = f.fixes
    assert "580.65.06" in driver.title and not driver.applicable  # the driver must change: to the newest torch's
    assert torch.commands == [f"{PY} -m pip install --upgrade torch==2.14.0 --index-url {CU}/cu130"]


def test_pascal_with_cu128_torch_28_gets_a_cu126_fix():
    fs = evaluate(box(gpus=[gpu("NVIDIA GeForce GTX 1080", "6.1", 8192)], driver="570.86.10", driver_cuda="12.8",
                      torch="2.8.0+cu128", torch_cuda="12.8", arch=ARCH_CU128_28, bnb="0.48.1"))
    f = one(fs, "torch-arch-unsupported")
    assert all_commands(f) == [f"{PY} -m pip install --upgrade torch==2.14.0 --index-url {CU}/cu126"]
    assert one(fs, "bf16-unsupported").severity == "warning"


def test_arch_list_from_the_knowledge_when_the_report_has_none():
    # a pasted collect_env gives the version but no arch list: the table fills it in
    fs = evaluate(rtx5090(torch="2.5.1+cu124", torch_cuda="12.4", arch=None))
    assert "torch-arch-unsupported" in ids(fs, "error")


def test_cpu_torch_on_a_gpu_box_linux():
    fs = evaluate(box(gpus=[gpu("NVIDIA GeForce RTX 4090", "8.9", 24564)], driver="570.86.10", driver_cuda="12.8",
                      torch="2.14.0+cpu", torch_cuda=None, bnb="0.48.1", bnb_lib="cpu"))
    f = one(fs, "torch-cpu-build")
    assert f.severity == "error" and "RTX 4090" in f.title
    # a 570 driver (CUDA 12.8) runs 2.14's cu126 build; the same release in another variant needs --force-reinstall
    assert all_commands(f) == [f"{PY} -m pip install --upgrade --force-reinstall torch==2.14.0 --index-url {CU}/cu126"]


def test_cpu_torch_on_a_gpu_box_with_an_old_driver_gets_a_build_it_runs():
    fs = evaluate(box(gpus=[gpu("NVIDIA GeForce RTX 3090", "8.6", 24576)], driver="535.54.03", driver_cuda="12.2",
                      torch="2.14.0+cpu"))
    # a 535 driver (CUDA 12.2) runs cu126 wheels by minor-version compatibility; never a torch < 2.6
    assert all_commands(one(fs, "torch-cpu-build")) == [
        f"{PY} -m pip install --upgrade --force-reinstall torch==2.14.0 --index-url {CU}/cu126"]


def test_cpu_torch_on_windows_powershell_quotes_the_interpreter():
    fs = evaluate(box(system="Windows", distro=None, gpus=[gpu("NVIDIA GeForce RTX 4070", "8.9", 12282)],
                      driver="576.02", driver_cuda="12.9", torch="2.14.0+cpu", exe=WIN_PY))
    f = one(fs, "torch-cpu-build")
    assert f.fixes[0].shell == "powershell"
    assert all_commands(f) == ['& "C:\\Users\\x\\venv\\Scripts\\python.exe" -m pip install --upgrade '
                               f'--force-reinstall torch==2.14.0 --index-url {CU}/cu126']


def test_torch_missing_and_bnb_missing():
    fs = evaluate(rtx5090(torch=None, bnb=None))
    f = one(fs, "torch-missing")
    assert all_commands(f) == [f"{PY} -m pip install --upgrade torch==2.11.0 --index-url {CU}/cu128"]
    fs = evaluate(rtx5090(bnb=None))
    b = one(fs, "bnb-missing")
    assert b.severity == "warning" and all_commands(b) == [f"{PY} -m pip install --upgrade bitsandbytes"]


@pytest.mark.parametrize("kw, why", [
    (dict(system="Windows", distro=None, exe=WIN_PY, gpus=[gpu("NVIDIA GeForce RTX 3090", "8.6", 24576)],
          torch="2.5.1+cu121", torch_cuda="12.1", arch=ARCH_CU124, bnb="0.42.0"), "Windows"),
    (dict(bnb="0.45.2"), "Blackwell"),
    (dict(gpus=[gpu("NVIDIA GeForce RTX 4090", "8.9", 24564)], torch="2.9.1+cu130", torch_cuda="13.0",
          driver="580.65.06", driver_cuda="13.0", arch=["sm_75", "sm_89", "sm_90"], bnb="0.47.0"), "cu130"),
])
def test_bnb_too_old(kw, why):
    fs = evaluate(rtx5090(**kw))
    f = one(fs, "bnb-too-old")
    assert f.severity == "error" and why in f.detail
    assert f.fixes[0].applicable and f.fixes[0].commands[0].endswith("-m pip install --upgrade bitsandbytes")


def test_bnb_cpu_library_on_a_working_gpu():
    fs = evaluate(rtx5090(bnb="0.48.1", bnb_lib="cpu"))
    assert one(fs, "bnb-no-gpu-binary").severity == "error"


def test_driver_too_old_for_the_torch_build():
    fs = evaluate(box(gpus=[gpu("Tesla T4", "7.5", 15360)], driver="470.82.01", driver_cuda="11.4",
                      torch="2.7.1+cu126", torch_cuda="12.6", arch=ARCH_CU124, bnb="0.48.1"))
    f = one(fs, "driver-too-old")
    assert f.severity == "error"
    assert "560.28.03" in f.fixes[0].title and not f.fixes[0].applicable
    assert f.fixes[0].commands == ["sudo ubuntu-drivers list", "sudo ubuntu-drivers install", "sudo reboot"]


def test_minor_version_compatibility_is_a_warning():
    fs = evaluate(box(gpus=[gpu("NVIDIA A100-SXM4-80GB", "8.0", 81920)], driver="535.54.03", driver_cuda="12.2",
                      torch="2.7.1+cu126", torch_cuda="12.6", arch=ARCH_CU124, bnb="0.48.1"))
    assert one(fs, "driver-too-old").severity == "warning"
    assert not ids(fs, "error")


def test_windows_multi_gpu_use_libuv():
    two = [gpu("NVIDIA GeForce RTX 3090", "8.6", 24576, 0), gpu("NVIDIA GeForce RTX 3090", "8.6", 24576, 1)]
    fs = evaluate(box(system="Windows", distro=None, exe=WIN_PY, gpus=two, driver="576.02", driver_cuda="12.9",
                      torch="2.7.1+cu128", torch_cuda="12.8", arch=ARCH_CU128_27, bnb="0.48.1"))
    f = one(fs, "win-libuv")
    assert f.fixes[0].commands == ['$env:USE_LIBUV = "0"'] and f.fixes[0].applicable


@pytest.mark.parametrize("setup, want", [
    (dict(wsl_lib_dir=True, wsl_libcuda=False), "wsl-libcuda-path"),
    (dict(wsl_lib_dir=True, wsl_libcuda=True, wsl_linux_driver="nvidia-driver-550"), "wsl-linux-driver"),
])
def test_wsl2(setup, want):
    f = rtx5090(is_wsl=True, **setup)
    fs = evaluate(f)
    assert want in ids(fs, "error")
    if want == "wsl-libcuda-path":
        assert "export LD_LIBRARY_PATH=/usr/lib/wsl/lib:$LD_LIBRARY_PATH" in all_commands(one(fs, want))
    # a Windows-host driver update is never run by tunedoc
    assert not any(fx.applicable for fx in one(fs, want).fixes)


def test_wsl_without_driver_asks_for_the_windows_driver():
    fs = evaluate(box(is_wsl=True, torch="2.7.1+cu128", torch_cuda="12.8"))
    f = one(fs, "no-driver")
    assert "Windows" in f.fixes[0].title and f.fixes[0].commands == []
    # WSL cannot see the PCI bus: maybe there is no NVIDIA GPU at all, so not an error
    assert f.severity == "warning" and "CPU" in f.title


def test_windows_without_driver_or_known_gpu_is_a_warning_with_a_cpu_torch():
    fs = evaluate(box(system="Windows", distro=None, exe=WIN_PY, torch="2.11.0+cpu"))
    assert not ids(fs, "error"), [(f.id, f.severity) for f in fs]
    assert one(fs, "no-driver").severity == "warning"


@pytest.mark.parametrize("platform, pci, want", [
    (dict(in_container=True, container_kind="docker"), 1, "container-no-gpu"),
    (dict(), 1, "no-driver"),
])
def test_gpu_without_a_driver_is_an_error(platform, pci, want):
    f = box(torch="2.7.1+cu128", torch_cuda="12.8", **platform)
    f.platform.pci_nvidia_devices = pci
    fs = evaluate(f)
    assert want in ids(fs, "error")
    assert "no-gpu" not in ids(fs)


def test_container_without_driver_and_unknown_bus_is_a_warning():
    f = box(torch="2.7.1+cu128", torch_cuda="12.8", in_container=True, container_kind="docker")
    f.platform.pci_nvidia_devices = None
    fs = evaluate(f)
    assert one(fs, "container-no-gpu").severity == "warning" and not ids(fs, "error")
    assert "--gpus all" in all_commands(one(fs, "container-no-gpu"))[0]


@pytest.mark.parametrize("nvml_error, smi, want", [
    ("lib_rm_mismatch", "Failed to initialize NVML: Driver/library version mismatch", "driver-library-mismatch"),
    ("driver_not_loaded", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver",
     "driver-not-loaded"),
])
def test_broken_driver(nvml_error, smi, want):
    f = box(torch="2.7.1+cu128", torch_cuda="12.8")
    f.platform.pci_nvidia_devices = 1
    f.driver.present, f.driver.nvml_error, f.driver.nvidia_smi_error = True, nvml_error, smi
    fs = evaluate(f)
    assert want in ids(fs, "error") and "no-driver" not in ids(fs)
    assert any(smi in e for e in one(fs, want).evidence)


def test_mig_and_device_order():
    a100 = gpu("NVIDIA A100-SXM4-80GB", "8.0", 81920)
    a100.mig_mode, a100.mig_devices = True, ["MIG-1234"]
    fs = evaluate(rtx5090(gpus=[a100, gpu("NVIDIA GeForce RTX 4090", "8.9", 24564, 1)], bnb="0.48.1"))
    assert "export CUDA_VISIBLE_DEVICES=MIG-1234" in all_commands(one(fs, "mig-device-selection"))
    assert all_commands(one(fs, "device-order")) == ["export CUDA_DEVICE_ORDER=PCI_BUS_ID"]


def test_nvcc_mismatch_matters_only_when_building_extensions():
    f = rtx5090()
    f.toolkit.nvcc_path, f.toolkit.nvcc_version = "/usr/local/cuda-11.8/bin/nvcc", "11.8"
    assert one(evaluate(f), "nvcc-mismatch").severity == "info"
    f.python.packages["flash-attn"] = "2.7.4"
    assert one(evaluate(f), "nvcc-mismatch").severity == "warning"


def test_windows_platform_findings():
    f = rtx5090(system="Windows", distro=None, exe=WIN_PY, bnb="0.48.1", long_paths_enabled=False,
                symlinks_supported=False)
    f.python.packages["triton"] = "3.3.0"
    fs = evaluate(f)
    assert {"win-long-paths", "win-symlinks", "win-triton"} <= ids(fs, "warning")
    assert all_commands(one(fs, "win-triton")) == ['& "C:\\Users\\x\\venv\\Scripts\\python.exe" -m pip uninstall -y '
                                                   'triton', '& "C:\\Users\\x\\venv\\Scripts\\python.exe" -m pip '
                                                   'install triton-windows']


def test_hf_disk_low_and_mirror():
    f = this_machine()
    f.hf.disk_free_bytes, f.hf.endpoint = 5 << 30, "https://hf-mirror.com"
    fs = evaluate(f)
    assert one(fs, "hf-disk-low").severity == "warning" and one(fs, "hf-endpoint").severity == "info"
    assert "hf-ok" not in ids(fs)


# --- partial facts: the TUI evaluates while probes run ----------------------------------------------------------
def test_empty_facts_give_no_findings():
    assert evaluate(Facts()) == []


@pytest.mark.parametrize("fill", ["platform", "gpus", "driver", "torch", "bnb"])
def test_partial_facts_fire_no_error(fill):
    full = rtx5090()
    f = Facts()
    setattr(f, fill, getattr(full, fill))
    fs = evaluate(f)
    assert not ids(fs, "error", "warning"), (fill, [(x.id, x.title) for x in fs])


def test_findings_are_sorted_errors_first_then_area():
    f = this_machine()
    f.hf.disk_free_bytes = 1 << 30
    f.signatures.append(Signature(id="cuda-oom", line="torch.OutOfMemoryError: CUDA out of memory."))
    fs = evaluate(f)
    order = {"error": 0, "warning": 1, "info": 2, "ok": 3}
    assert [order[x.severity] for x in fs] == sorted(order[x.severity] for x in fs)
    warnings = [x.id for x in fs if x.severity == "warning"]
    assert warnings == ["no-gpu", "hf-disk-low"]


# --- signatures from pasted logs --------------------------------------------------------------------------------
def report(system=None, **sig) -> Facts:
    f = Facts(origin="report")
    f.platform.system = system
    f.signatures.append(Signature(**sig))
    return f


@pytest.mark.parametrize("sid", [k for k, e in CATALOG.items() if e.severity != "ok"])
def test_every_signature_id_becomes_a_finding_with_its_line(sid):
    line = f"some log line for {sid}"
    fs = evaluate(report(id=sid, line=line, source="log.txt:7"))
    f = one(fs, sid)
    assert f.severity == CATALOG[sid].severity
    assert f.evidence == [f"log.txt:7: {line}"]


def test_arch_signature_alone_gets_an_exact_fix():
    fs = evaluate(report(id="torch-arch-unsupported", data={"capability": "12.0"},
                         line="NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current "
                              "PyTorch installation."))
    f = one(fs, "torch-arch-unsupported")
    assert "sm_120" in f.title
    assert all_commands(f)[0] == f"python -m pip install --upgrade torch==2.14.0 --index-url {CU}/cu130"
    assert any("580.65.06" in x.title or "580.65.06" in f.detail for x in f.fixes)  # the driver is unknown: say it


def test_signature_and_probe_for_the_same_condition_give_one_finding():
    f = rtx5090(torch="2.5.1+cu124", torch_cuda="12.4", arch=ARCH_CU124)
    line = "RuntimeError: CUDA error: no kernel image is available for execution on the device"
    f.signatures.append(Signature(id="torch-arch-unsupported", line=line, source="train.log:12"))
    fs = evaluate(f)
    x = one(fs, "torch-arch-unsupported")
    assert f"train.log:12: {line}" in x.evidence and any("arch list" in e for e in x.evidence)
    assert all_commands(x) == [f"{PY} -m pip install --upgrade torch==2.11.0 --index-url {CU}/cu128"]


def test_driver_too_old_signature_offers_a_torch_for_the_driver():
    fs = evaluate(report(id="driver-too-old", data={"found": "11.4", "found_version": 11040}, system="Linux",
                         line="The NVIDIA driver on your system is too old (found version 11040)."))
    f = one(fs, "driver-too-old")
    assert "11.4" in f.title and not f.fixes[0].applicable
    # or keep the driver (CUDA 11.4): a cu118 build runs on it by minor-version compatibility
    assert f.fixes[1].applicable
    assert f.fixes[1].commands == [f"python -m pip install --upgrade torch==2.7.1 --index-url {CU}/cu118"]


def test_libuv_signature_on_windows():
    fs = evaluate(report(id="win-libuv", system="Windows",
                         line="use_libuv was requested but PyTorch was build without libuv support"))
    assert all_commands(one(fs, "win-libuv"))[0] == '$env:USE_LIBUV = "0"'


def test_oom_signature_explains_the_numbers():
    fs = evaluate(report(id="cuda-oom", data={"tried_gib": 2.0, "total_gib": 23.65, "free_gib": 1.1},
                         line="torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"))
    f = one(fs, "cuda-oom")
    assert "2.0 GiB" in f.detail and "23.65 GiB" in f.detail
    assert "export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True" in all_commands(f)


def test_torch_missing_on_a_machine_without_gpu_suggests_the_cpu_wheel():
    from tunedoc.doctor.facts import Facts, ProbeStatus
    from tunedoc.doctor.rules import evaluate

    f = Facts()
    f.platform.system, f.platform.pci_nvidia_devices = "Linux", 0
    f.driver.present = False
    f.python.executable = "/home/u/venv/bin/python"
    f.torch.installed = False
    f.probes["python"] = ProbeStatus("python")
    missing = next(x for x in evaluate(f) if x.id == "torch-missing")
    assert missing.fixes[0].commands == [
        "/home/u/venv/bin/python -m pip install --upgrade torch --index-url https://download.pytorch.org/whl/cpu"]
