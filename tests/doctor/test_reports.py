"""Report parsers: pasted text -> Facts. Real outputs from tests/doctor/corpus/ and format snippets of each tool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunedoc.doctor.facts import Facts
from tunedoc.doctor.reports import ReportError, detect, parse_files, parse_text

CORPUS = Path(__file__).parent / "corpus"


def corpus(name: str) -> Facts:
    return parse_files([str(CORPUS / name)])


# --- collect_env -------------------------------------------------------------------------------------------------
def test_collect_env_rtx5090_cu126_facts_and_signature():
    f = corpus("pytorch-150733-rtx5090d-cu126.txt")
    assert f.origin == "report" and "collect_env" in f.sources
    assert (f.torch.version, f.torch.cuda, f.torch.cuda_available, f.torch.import_ok) == ("2.6.0+cu126", "12.6", True, True)
    assert f.torch.arch_list == ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"]
    assert f.driver.version == "570.124.04" and f.driver.present is True
    assert [(g.index, g.name, g.compute_capability) for g in f.gpus] == [(0, "NVIDIA GeForce RTX 5090 D", "12.0")]
    assert (f.platform.system, f.platform.distro, f.python.version) == ("Linux", "Ubuntu 24.10", "3.12.9")
    sig = f.signatures[0]
    assert sig.id == "torch-arch-unsupported" and sig.data["capability"] == "12.0"
    assert sig.source == "pytorch-150733-rtx5090d-cu126.txt:3"


def test_collect_env_wsl2_and_nvcc_runtime():
    f = corpus("vllm-9293-wsl2-rtx4070-healthy.txt")
    assert f.platform.is_wsl is True and f.platform.system == "Linux"
    assert f.toolkit.nvcc_version == "12.4"  # "CUDA runtime version: 12.4.131" is nvcc's
    assert f.gpus[0].compute_capability == "8.9"
    assert f.signatures == []


def test_collect_env_cpu_build_on_windows_is_a_known_cpu_build():
    f = corpus("pytorch-137846-windows-cpu-build-no-gpu.txt")
    assert f.torch.version == "2.8.0.dev20250528+cpu"
    assert f.torch.cuda == ""  # known CPU build, not unknown
    assert f.torch.cuda_available is False and f.platform.system == "Windows"
    assert f.gpus is None and f.driver.version is None  # "No CUDA" is not a GPU name


def test_collect_env_without_torch_and_a_dll_error():
    f = corpus("pytorch-133397-fbgemm-winerror126.txt")
    assert f.torch.version is None and f.torch.installed is False
    sig = [s for s in f.signatures if s.id == "torch-import-dll"][0]
    assert sig.data == {"winerror": 126, "dll": "fbgemm.dll"}
    assert f.platform.system == "Windows"


def test_collect_env_pip_and_conda_lines():
    text = """PyTorch version: 2.1.0
Is debug build: False
CUDA used to build PyTorch: 12.1
Is CUDA available: True
GPU models and configuration:
GPU 0: NVIDIA A100-SXM4-80GB
GPU 1: NVIDIA A100-SXM4-80GB

Nvidia driver version: 535.104.05

Versions of relevant libraries:
[pip3] numpy==1.26.0
[pip3] torch==2.1.0
[pip3] triton==2.1.0
[conda] pytorch-cuda              12.1                 ha16c6d3_5    pytorch
"""
    f = parse_text(text)
    assert [g.name for g in f.gpus] == ["NVIDIA A100-SXM4-80GB"] * 2 and f.gpus[1].index == 1
    assert f.gpus[0].compute_capability == "8.0"
    assert f.python.packages["triton"] == "2.1.0" and f.python.packages["pytorch-cuda"] == "12.1"
    assert f.torch.cuda == "12.1"


# --- nvidia-smi ----------------------------------------------------------------------------------------------------
def test_nvidia_smi_table_old_format_with_mig_column():
    f = corpus("pytorch-45028-a100-old-torch-sm80.txt")
    assert (f.driver.version, f.driver.cuda_version, f.driver.loaded) == ("450.119.03", "11.0", True)
    g = f.gpus[0]
    assert (g.name, g.pci_bus_id, g.memory_used_mb, g.memory_total_mb, g.memory_free_mb) == (
        "A100-SXM4-40GB", "00000000:04:00.0", 1404, 40537, 39133)
    assert g.mig_mode is False and g.persistence_mode is True and g.compute_capability == "8.0"


WIN_SMI = """+-----------------------------------------------------------------------------------------+\r
| NVIDIA-SMI 572.16                 Driver Version: 572.16         CUDA Version: 12.8     |\r
|-----------------------------------------+------------------------+----------------------+\r
| GPU  Name                  Driver-Model | Bus-Id          Disp.A | Volatile Uncorr. ECC |\r
| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |\r
|                                         |                        |               MIG M. |\r
|=========================================+========================+======================|\r
|   0  NVIDIA GeForce RTX 5090      WDDM  |   00000000:01:00.0  On |                  N/A |\r
|  0%   38C    P8             21W /  575W |    1873MiB /  32607MiB |      2%      Default |\r
|                                         |                        |                  N/A |\r
+-----------------------------------------+------------------------+----------------------+\r
"""


def test_nvidia_smi_windows_table_with_crlf_ansi_and_quotes():
    quoted = "\n".join("> \x1b[32m" + line + "\x1b[0m" for line in WIN_SMI.split("\n"))
    for text in (WIN_SMI, "```\n" + quoted + "\n```"):
        f = parse_text(text)
        assert detect(text) == ["nvidia-smi"]
        assert (f.driver.version, f.driver.cuda_version) == ("572.16", "12.8")
        g = f.gpus[0]
        assert (g.name, g.driver_model, g.memory_total_mb, g.compute_capability) == (
            "NVIDIA GeForce RTX 5090", "WDDM", 32607, "12.0")
        assert f.platform.system == "Windows"


SMI_Q = """
==============NVSMI LOG==============

Timestamp                                 : Tue Jan  7 10:00:00 2025
Driver Version                            : 550.54.15
CUDA Version                              : 12.4

Attached GPUs                             : 1
GPU 00000000:00:04.0
    Product Name                          : NVIDIA A100-SXM4-40GB
    Persistence Mode                      : Enabled
    MIG Mode
        Current                           : Enabled
        Pending                           : Enabled
    GPU UUID                              : GPU-2c1b3e4f-aaaa-bbbb-cccc-1234567890ab
    FB Memory Usage
        Total                             : 40960 MiB
        Reserved                          : 634 MiB
        Used                              : 13 MiB
        Free                              : 40312 MiB
"""


def test_nvidia_smi_q_mig_enabled():
    f = parse_text(SMI_Q)
    assert "nvidia-smi-q" in f.sources
    assert (f.driver.version, f.driver.cuda_version) == ("550.54.15", "12.4")
    g = f.gpus[0]
    assert (g.name, g.mig_mode, g.memory_total_mb, g.memory_free_mb, g.uuid[:4]) == (
        "NVIDIA A100-SXM4-40GB", True, 40960, 40312, "GPU-")
    assert g.pci_bus_id == "00000000:00:04.0"


def test_nvidia_smi_failures_become_driver_facts():
    f = corpus("qixuema-envs-4-smi-failed-dkms.txt")
    assert f.driver.present is True and f.driver.loaded is False and f.driver.nvml_error == "driver_not_loaded"
    assert f.toolkit.nvcc_version == "10.0"
    f = parse_text("Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 570.124\n")
    assert f.driver.nvml_error == "lib_rm_mismatch"
    assert [s.id for s in f.signatures] == ["driver-library-mismatch"]


# --- package lists -------------------------------------------------------------------------------------------------
def test_pip_list_and_freeze_with_url_and_local_versions():
    pip_list = """Package                  Version
------------------------ ------------
bitsandbytes             0.45.3
torch                    2.7.0+cu128
transformers             4.51.3
"""
    f = parse_text(pip_list)
    assert detect(pip_list) == ["pip-list"]
    assert (f.torch.version, f.torch.cuda, f.bnb.version, f.bnb.installed) == ("2.7.0+cu128", "12.8", "0.45.3", True)
    freeze = """accelerate==1.6.0
torch @ https://download.pytorch.org/whl/cu128/torch-2.7.0%2Bcu128-cp312-cp312-manylinux_2_28_x86_64.whl
peft==0.15.2
Flash_Attn==2.7.4.post1
"""
    f = parse_text(freeze)
    assert "pip-freeze" in f.sources
    assert f.torch.version == "2.7.0+cu128" and f.torch.cuda == "12.8"
    assert f.python.packages["flash-attn"] == "2.7.4.post1"


def test_conda_list_cpu_build_and_cuda_build():
    text = """# packages in environment at /home/me/miniconda3/envs/ft:
#
# Name                    Version                   Build  Channel
cpuonly                   2.0                           0    pytorch
pytorch                   2.1.0               py3.10_cpu_0    pytorch
"""
    f = parse_text(text)
    assert f.python.is_conda is True and f.torch.version == "2.1.0" and f.torch.cuda == ""
    f = parse_text(text.replace("py3.10_cpu_0", "py3.10_cuda12.1_cudnn8.9.2_0").replace("cpuonly", "pytorch-cuda"))
    assert f.torch.cuda == "12.1"


# --- env blocks, bitsandbytes, banners -----------------------------------------------------------------------------
def test_transformers_env_block():
    text = """- `transformers` version: 4.36.2
- Platform: Windows-10-10.0.22631-SP0
- Python version: 3.10.11
- Huggingface_hub version: 0.20.1
- Accelerate version: 0.25.0
- Accelerate config: 	not found
- PyTorch version (GPU?): 2.1.2+cu121 (True)
- Tensorflow version (GPU?): not installed (NA)
- Using GPU in script?: <fill in>
"""
    f = parse_text(text)
    assert detect(text) == ["env-block"]
    assert (f.platform.system, f.python.version) == ("Windows", "3.10.11")
    assert (f.torch.version, f.torch.cuda, f.torch.cuda_available, f.torch.import_ok) == ("2.1.2+cu121", "12.1", True, True)
    assert f.python.packages["accelerate"] == "0.25.0" and "tensorflow" not in f.python.packages


def test_llamafactory_env_block_without_local_version_leaves_cuda_unknown():
    text = """- `llamafactory` version: 0.9.2
- Platform: Linux-5.15.0-119-generic-x86_64-with-glibc2.35
- Python version: 3.10.16
- PyTorch version: 2.5.1 (GPU)
- Transformers version: 4.49.0
- PEFT version: 0.12.0
- GPU type: NVIDIA A100-SXM4-80GB
- GPU number: 8
- GPU memory: 79.33GB
- Bitsandbytes version: 0.45.3
"""
    f = parse_text(text)
    assert f.gpus[0].name == "NVIDIA A100-SXM4-80GB" and f.gpus[0].memory_total_mb == 81233
    assert f.bnb.version == "0.45.3" and f.python.packages["peft"] == "0.12.0"
    # "2.5.1 (GPU)" says CUDA works but not which CUDA: no rule may conclude "CPU build" from it
    assert f.torch.cuda is None and f.torch.import_ok is None and f.torch.cuda_available is True


def test_bitsandbytes_new_diagnostics():
    text = """=================== bitsandbytes v0.45.0 ===================
Platform: Linux-6.8.0-49-generic-x86_64-with-glibc2.39
  libc: glibc-2.39
Python: 3.11.10
PyTorch: 2.5.1+cu124
  CUDA: 12.4
  HIP: N/A
  XPU: N/A
Related packages:
  accelerate: 1.2.1
  diffusers: not found
  transformers: 4.47.1
  triton: 3.1.0
============================================================
CUDA specs:CUDASpecs(highest_compute_capability=(8, 9), cuda_version_string='124', cuda_version_tuple=(12, 4), cuda_major_version=12)
PyTorch settings found: CUDA_VERSION=124, Highest Compute Capability: (8, 9).
Checking that the library is importable and CUDA is callable...
SUCCESS!
Installation was successful!
"""
    f = parse_text(text)
    assert detect(text) == ["bitsandbytes"]
    assert (f.bnb.version, f.bnb.import_ok, f.bnb.lib_kind) == ("0.45.0", True, "cuda")
    assert (f.torch.version, f.torch.cuda, f.torch.import_ok) == ("2.5.1+cu124", "12.4", True)
    assert f.python.packages["transformers"] == "4.47.1" and "diffusers" not in f.python.packages
    assert {"capability": "8.9"} in f.torch.devices and f.signatures == []


def test_bitsandbytes_old_report_on_windows():
    f = corpus("bnb-1568-windows-python312-cpu-library.txt")
    assert (f.bnb.lib_kind, f.bnb.native_lib) == ("cpu", "libbitsandbytes_cpu.so")
    assert f.platform.system == "Windows"
    assert {s.id for s in f.signatures} == {"bnb-no-gpu-binary"}  # WinError 193 is not torch's DLL problem


def test_bnb_cpu_library_with_an_old_version_on_windows_is_too_old():
    text = ("pip list says bitsandbytes==0.41.1 and torch==2.1.0+cu121\n"
            "bin C:\\Users\\me\\venv\\lib\\site-packages\\bitsandbytes\\libbitsandbytes_cpu.so\n"
            "RuntimeError: CUDA Setup failed despite GPU being available. Please run the following command\n")
    f = parse_text(text + "bitsandbytes==0.41.1\ntorch==2.1.0+cu121\n")
    assert {s.id for s in f.signatures} == {"bnb-too-old"}
    assert f.signatures[0].data["why"] == ["windows"]


def test_unsloth_banner_healthy_rtx50_windows():
    f = corpus("transformers-30607-rtx5090-laptop-windows-cu128-healthy.txt")
    assert (f.torch.version, f.torch.cuda, f.torch.import_ok) == ("2.7.1+cu128", "12.8", True)
    g = f.gpus[0]
    assert (g.name, g.compute_capability, f.platform.system) == ("NVIDIA GeForce RTX 5090 Laptop GPU", "12.0", "Windows")


# --- signatures ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("line,sid,data", [
    ("RuntimeError: The NVIDIA driver on your system is too old (found version 11040). Please update",
     "driver-too-old", {"found": "11.4", "found_version": 11040}),
    ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 90.00 MiB. GPU 0 has a total capacity of "
     "23.55 GiB of which 45.75 MiB is free.", "cuda-oom",
     {"tried_gib": 0.09, "total_gib": 23.55, "free_gib": 0.04, "gpu_index": 0}),
    ("OSError: [WinError 1114] A dynamic link library (DLL) initialization routine failed. Error loading "
     '"C:\\venv\\Lib\\site-packages\\torch\\lib\\c10.dll" or one of its dependencies.', "torch-import-dll",
     {"winerror": 1114, "dll": "c10.dll"}),
    ("RuntimeError: Distributed package doesn't have NCCL built in", "win-no-nccl", {}),
    ("ImportError: libcudart.so.12: cannot open shared object file: No such file or directory", "libcudart-missing",
     {"lib": "libcudart.so.12"}),
    ("OSError: Installed CUDA version 11.0 does not match the version torch was compiled with 11.7, unable to "
     "compile cuda/cpp extensions", "nvcc-mismatch", {"nvcc": "11.0", "torch_cuda": "11.7"}),
    ("RuntimeError: cuDNN version incompatibility: PyTorch was compiled  against (8, 3, 2) but found runtime version "
     "(8, 0, 3).", "cudnn-mismatch", {"compiled": "(8, 3, 2)", "linked": "(8, 0, 3)"}),
    ("ImportError: /root/.cache/torch_extensions/py310_cu121/cpu_adam/cpu_adam.so: cannot open shared object file",
     "deepspeed-op-build", {}),
    ("ValueError: Your setup doesn't support bf16/gpu. You need torch>=1.10, using Ampere GPU with cuda>=11.0",
     "bf16-unsupported", {}),
    ("Could not load library libcudnn_cnn_infer.so.8. Error: libcuda.so: cannot open shared object file: No such file",
     "wsl-libcuda-path", {}),
    ("UserWarning: `huggingface_hub` cache-system uses symlinks by default to efficiently store duplicated files but "
     "your machine does not support them in C:\\Users\\me\\.cache\\huggingface\\hub.", "win-symlinks", {}),
    ("HINT: This error might have occurred since this system does not have Windows Long Path support enabled.",
     "win-long-paths", {}),
    ("Error 804: forward compatibility was attempted on non supported HW", "driver-too-old", {"forward_compat": True}),
    ("Could not find the bitsandbytes CUDA binary at WindowsPath('C:/venv/Lib/site-packages/bitsandbytes/"
     "libbitsandbytes_cuda128.dll')", "bnb-no-gpu-binary", None),
])
def test_signature_table(line, sid, data):
    f = parse_text(line)
    assert [s.id for s in f.signatures] == [sid]
    if data is not None:
        assert f.signatures[0].data == data
    assert f.signatures[0].source == "<text>:1"


def test_conditional_signatures_need_their_platform():
    linux = 'File "/home/u/venv/lib/python3.11/site-packages/x.py", line 3\nModuleNotFoundError: No module named \'triton\''
    assert "win-triton" not in {s.id for s in parse_text(linux).signatures}
    win = linux.replace("/home/u/venv/lib/python3.11/site-packages/", "C:\\Users\\u\\venv\\Lib\\site-packages\\")
    f = parse_text(win)
    assert f.platform.system == "Windows" and "win-triton" in {s.id for s in f.signatures}
    mig = "RuntimeError: device >= 0 && device < num_gpus INTERNAL ASSERT FAILED at ../aten/src/ATen/cuda/CUDAContext.cpp"
    assert parse_text(mig + "\nMIG-3g.40gb").signatures[0].id == "mig-device-selection"
    with pytest.raises(ReportError):
        parse_text(mig)  # without MIG in sight it is not this diagnosis, and nothing else is recognized


def test_benign_sm121_warning_is_not_a_signature_but_a_gpu_fact():
    f = corpus("spark-vllm-docker-15-gb10-benign-warning.txt")
    assert f.signatures == []
    assert (f.gpus[0].name, f.gpus[0].compute_capability) == ("NVIDIA GB10", "12.1")
    f = parse_text("Found GPU0 NVIDIA GeForce GTX 1080 Ti which is of cuda capability 6.1. Minimum and Maximum cuda "
                   "capability supported by this version of PyTorch is (7.0) - (12.0)")
    assert f.signatures[0].id == "torch-arch-unsupported" and f.signatures[0].data["capability"] == "6.1"


# --- mixes, JSON, files and errors ---------------------------------------------------------------------------------
def test_mixed_report_any_order_with_chat_noise():
    smi = WIN_SMI.replace("\r", "")
    text = ("Hi! here is my setup, any idea?\n\n" + smi + "\nand pip:\n\n```\ntorch==2.6.0+cu124\ntorchvision==0.21.0+cu124\n```\n"
            "then training says:\n> RuntimeError: CUDA error: no kernel image is available for execution on the device\n")
    f = parse_text(text)
    assert detect(text) == ["nvidia-smi", "pip-freeze", "traceback"]
    assert (f.torch.version, f.torch.cuda, f.gpus[0].compute_capability) == ("2.6.0+cu124", "12.4", "12.0")
    assert [s.id for s in f.signatures] == ["torch-arch-unsupported"]


def test_tunedoc_json_round_trip_and_bare_facts(tmp_path):
    original = corpus("pytorch-150733-rtx5090d-cu126.txt")
    wrapped = json.dumps({"version": "0.1", "facts": original.to_dict(), "findings": []}, indent=2)
    for text in (wrapped, "my doctor output:\n```json\n" + wrapped + "\n```\n", original.to_json()):
        f = parse_text(text)
        assert "tunedoc-json" in f.sources and f.origin == "report"
        assert f.gpus[0].name == "NVIDIA GeForce RTX 5090 D" and f.torch.arch_list == original.torch.arch_list
        assert [s.id for s in f.signatures] == ["torch-arch-unsupported"]  # not duplicated from the JSON's lines


def test_parse_files_merges_and_records_sources(tmp_path):
    a = tmp_path / "smi.txt"
    a.write_text(WIN_SMI, encoding="utf-8")
    b = tmp_path / "log.txt"
    b.write_text("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity "
                 "of 31.36 GiB of which 1.02 GiB is free.\n", encoding="utf-8")
    f = parse_files([str(a), str(b)])
    assert f.driver.version == "572.16" and [s.id for s in f.signatures] == ["cuda-oom"]
    assert f.signatures[0].source == "log.txt:1"
    assert str(a) in f.sources and str(b) in f.sources and "nvidia-smi" in f.sources


def test_powershell_utf16_file_is_read(tmp_path):
    p = tmp_path / "env.txt"
    p.write_bytes(WIN_SMI.encode("utf-16"))  # what `nvidia-smi > env.txt` writes in Windows PowerShell 5
    assert parse_files([str(p)]).driver.version == "572.16"


@pytest.mark.parametrize("content,message", [
    (b"", "is empty"),
    (b"   \n\n", "is empty"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00binary", "binary"),
    (bytes(range(128, 256)) * 4, "not UTF-8"),
    (b"hello, my GPU does not work, please help", "no report recognized"),
])
def test_unusable_files_give_a_clear_error(tmp_path, content, message):
    p = tmp_path / "report.txt"
    p.write_bytes(content)
    with pytest.raises(ReportError) as e:
        parse_files([str(p)])
    assert message in str(e.value) and "report.txt" in str(e.value)


def test_missing_and_directory_paths(tmp_path):
    with pytest.raises(ReportError, match="no such file"):
        parse_files([str(tmp_path / "nope.txt")])
    with pytest.raises(ReportError, match="is a directory"):
        parse_files([str(tmp_path)])
    with pytest.raises(ReportError, match="no report file given"):
        parse_files([])
