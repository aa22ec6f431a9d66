"""What people really paste (issue 12): free text, partial facts, new signatures, root causes, context-aware fixes.

The texts are the issue's examples and lines of the corpus threads, as pasted.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tunedoc.doctor.reports import ReportError, parse_files, parse_text
from tunedoc.doctor.rules import CATALOG, evaluate

CORPUS = Path(__file__).parent / "corpus"


def diagnose(text: str):
    facts = parse_text(text, source="issue.txt")
    return facts, evaluate(facts)


def ids(findings, severity=None):
    return {f.id for f in findings if severity is None or f.severity == severity}


def one(findings, fid):
    return next(f for f in findings if f.id == fid)


def commands(f) -> str:
    return "\n".join(c for fx in f.fixes for c in fx.commands)


# --- extractors ------------------------------------------------------------------------------------------------------
def test_markdown_template_with_bold_keys_and_parenthesised_driver():
    facts, fs = diagnose("### Environment\n- **PyTorch Version**: 2.2.0+cu121\n"
                         "- GPU: NVIDIA GeForce RTX 5090 (32GB)\n- CUDA Version: 12.8 (Driver 570.181)\n- OS: Ubuntu\n")
    assert facts.torch.version == "2.2.0+cu121" and facts.torch.cuda == "12.1"
    assert facts.gpus[0].name == "NVIDIA GeForce RTX 5090" and facts.gpus[0].compute_capability == "12.0"
    assert facts.driver.version == "570.181" and facts.driver.cuda_version == "12.8"
    assert facts.platform.system == "Linux"
    assert facts.quoted["torch.version"] == "issue.txt:2: - **PyTorch Version**: 2.2.0+cu121"
    assert "torch-arch-unsupported" in ids(fs, "error")  # a cu121 build has no sm_120 kernels


def test_markdown_table_rows():
    facts, _ = diagnose("| Key | Value |\n|---|---|\n| PyTorch | 2.5.1+cu124 |\n| GPU | NVIDIA GeForce RTX 4090 |\n"
                        "| Driver | 560.35.03 |\n")
    assert facts.torch.version == "2.5.1+cu124" and facts.driver.version == "560.35.03"
    assert facts.gpus[0].name == "NVIDIA GeForce RTX 4090"


def test_prose_sentence():
    facts, fs = diagnose("I'm using Ubuntu 16.04, NVIDIA driver 367.57, GeForce GTX 1080\n")
    assert facts.driver.version == "367.57"
    assert facts.gpus[0].name == "NVIDIA GeForce GTX 1080" and facts.gpus[0].compute_capability == "6.1"
    assert facts.platform.system == "Linux"
    assert not ids(fs, "error")


def test_one_liner_print_of_a_healthy_machine_is_a_clean_verdict():
    text = ("Device: NVIDIA GeForce RTX 5090\nCompute Capability: 12.0\nPyTorch Version: 2.12.0.dev20260330+cu128\n"
            "CUDA Version (Torch): 12.8\ncuDNN Version: 92000\n")
    facts, fs = diagnose(text)
    assert facts.torch.version == "2.12.0.dev20260330+cu128" and facts.torch.cuda == "12.8"
    assert facts.gpus[0].compute_capability == "12.0"
    assert not ids(fs, "error") and not ids(fs, "warning")


def test_repl_session_values_on_the_next_line():
    facts, fs = diagnose(">>> import torch\n>>> torch.__version__\n'2.5.1+cpu'\n>>> torch.cuda.is_available()\nFalse\n"
                         ">>> torch.cuda.get_device_name(0)\n")
    assert facts.torch.version == "2.5.1+cpu" and facts.torch.cuda == ""
    assert facts.torch.cuda_available is False


def test_pip_logs_and_wheel_names():
    facts, _ = diagnose("C:\\Users\\me\\proj>pip install torch\nCollecting torch\n  Downloading https://download.pytorch"
                        ".org/whl/nightly/cu128/torch-2.8.0.dev20250416%2Bcu128-cp312-cp312-win_amd64.whl (3.2 GB)\n")
    assert facts.torch.version == "2.8.0.dev20250416+cu128" and facts.torch.cuda == "12.8"
    assert facts.python.version == "3.12" and facts.platform.system == "Windows"
    facts, _ = diagnose("Successfully installed bitsandbytes-0.45.5 torch-2.5.1\n")
    assert facts.torch.version == "2.5.1" and facts.bnb.version == "0.45.5"
    facts, _ = diagnose("Requirement already satisfied: torch in /home/u/.venv/lib/python3.11/site-packages (2.6.0+cu124)\n")
    assert facts.torch.version == "2.6.0+cu124" and facts.python.version == "3.11"


def test_os_wsl_and_container_hints_from_prompts_and_paths():
    facts, _ = diagnose("(venv) me@box:/mnt/c/Users/me/proj$ python train.py\nPyTorch version: 2.7.0+cu128\n")
    assert facts.platform.is_wsl is True and facts.platform.system == "Linux"
    facts, _ = diagnose("root@3f2a9c1b7d4e:/workspace# python -c 'import torch'\nPyTorch version: 2.7.0+cu128\n")
    assert facts.platform.in_container is True
    assert facts.quoted["platform.in_container"].startswith("issue.txt:1: root@3f2a9c1b7d4e")


def test_two_sources_that_disagree_are_noted():
    facts, _ = diagnose("Driver Version: 550.54.14\nI updated my driver 560.35.03 yesterday\nPyTorch: 2.5.1+cu124\n")
    assert facts.driver.version == "550.54.14"
    assert any("560.35.03" in c and "550.54.14" in c for c in facts.conflicts)


def test_nothing_at_all_is_still_exit_2_but_any_fact_is_a_partial_diagnosis():
    with pytest.raises(ReportError, match="no report recognized"):
        parse_text("hello, my training does not start, please help\n")
    facts, fs = diagnose("GPU: NVIDIA GeForce RTX 3090\n")
    assert facts.gpus[0].compute_capability == "8.6" and not ids(fs, "error")


# --- signatures ------------------------------------------------------------------------------------------------------
def test_truncated_winerror_1114_in_a_torch_traceback():
    text = ('  File "C:\\Users\\me\\venv\\Lib\\site-packages\\torch\\__init__.py", line 148, in _load_dll_libraries\n'
            "    raise err\nOSError: [WinError 1114] A dynamic link library (D")
    _, fs = diagnose(text)
    assert "torch-import-dll" in ids(fs, "error")
    assert "vc_redist" in " ".join(fx.url or "" for fx in one(fs, "torch-import-dll").fixes)


def test_chinese_locale_messages_in_a_gbk_file(tmp_path):
    text = ('Traceback (most recent call last):\n  File "D:\\ai\\venv\\lib\\site-packages\\torch\\__init__.py", line 1\n'
            "OSError: [WinError 1114] 动态链接库(DLL)初始化例程失败。\n")
    p = tmp_path / "zh.txt"
    p.write_bytes(text.encode("gbk"))
    facts = parse_files([str(p)])
    assert "动态链接库" in facts.signatures[0].line
    assert "torch-import-dll" in ids(evaluate(facts), "error")
    _, fs = diagnose('OSError: [WinError 126] 找不到指定的模块。 Error loading "D:\\venv\\lib\\site-packages\\torch\\lib'
                     '\\c10.dll" or one of its dependencies.\n')
    assert "torch-import-dll" in ids(fs, "error")


def test_nvml_unknown_error_in_docker():
    _, fs = diagnose("root@ab12cd34ef56:/# nvidia-smi\nFailed to initialize NVML: Unknown Error\n")
    f = one(fs, "container-nvml-lost")
    assert (f.severity, f.area) == ("error", "driver")
    assert "docker restart" in commands(f)


def test_804_in_a_container_is_the_host_driver():
    _, fs = diagnose("docker run --gpus all myimage:cuda12.1\nRuntimeError: Unexpected error from cudaGetDeviceCount()."
                     " Error 804: forward compatibility was attempted on non supported HW\n")
    f = one(fs, "driver-too-old")
    assert "host" in f.fixes[0].title and "804" in f.fixes[0].title


def test_803_and_insufficient_driver():
    _, fs = diagnose("RuntimeError: Unexpected error from cudaGetDeviceCount(). Error 803: system has unsupported "
                     "display driver / cuda driver combination\n")
    assert "driver-too-old" in ids(fs, "error")
    _, fs = diagnose("RuntimeError: CUDA error: CUDA driver version is insufficient for CUDA runtime version\n")
    assert "driver-too-old" in ids(fs, "error")


def test_libcudart_so_12_not_found():
    _, fs = diagnose("ImportError: libcudart.so.12: cannot open shared object file: No such file or directory\n")
    assert "libcudart-missing" in ids(fs, "error")


def test_torchvision_nms_installs_the_matching_torchvision():
    _, fs = diagnose("PyTorch version: 2.6.0+cu124\nRuntimeError: operator torchvision::nms does not exist\n")
    f = one(fs, "torchvision-mismatch")
    assert (f.severity, f.area) == ("error", "torch")
    assert "torchvision==0.21.*" in commands(f) and "whl/cu124" in commands(f)


def test_xformers_built_for_a_cuda_torch_on_a_cpu_torch_is_the_cpu_build_first():
    facts = parse_files([str(CORPUS / "pia-30-xformers-built-for-cu121-torch-cpu.txt")])
    fs = evaluate(facts)
    first = next(f for f in fs if f.severity == "error")
    assert first.id == "torch-cpu-build" and "extension-abi-mismatch" in first.explains
    assert facts.torch.version == "2.1.2+cpu"


def test_triton_missing_on_windows_from_prose():
    _, fs = diagnose("Can't run Unsloth locally in windows\n\nIt say's no module named Triton\n")
    assert "triton-windows" in commands(one(fs, "win-triton"))
    _, fs = diagnose("Running on Ubuntu 22.04\nModuleNotFoundError: No module named 'triton'\n")
    assert "win-triton" not in ids(fs)


# --- root cause and context ------------------------------------------------------------------------------------------
def test_cpu_torch_leads_and_names_what_it_explains():
    from tunedoc.doctor.render import summary_line

    facts, fs = diagnose("C:\\Users\\me>python train.py\nPyTorch version: 2.5.1+cpu\nGPU: NVIDIA GeForce RTX 4090\n"
                         "AssertionError: Torch not compiled with CUDA enabled\n"
                         "RuntimeError: use_libuv was requested but PyTorch was build without libuv support\n")
    assert fs[0].id == "torch-cpu-build" and "win-libuv" in fs[0].explains
    assert "Root cause: " in summary_line(facts, fs)


def test_compose_no_driver_gets_the_container_fixes():
    facts = parse_files([str(CORPUS / "abdbarho-sdwd-348-compose-found-no-nvidia-driver.txt")])
    f = one(evaluate(facts), "container-no-gpu")
    text = commands(f) + " ".join(fx.title for fx in f.fixes)
    assert "--gpus all" in text and "reservations" in text and "nvidia-container-toolkit" in text


def test_wsl_no_driver_is_the_windows_driver():
    _, fs = diagnose("me@box:/mnt/c/Users/me$ python -c 'import torch; torch.cuda.init()'\n"
                     "RuntimeError: Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU\n")
    f = one(fs, "no-driver")
    assert "Windows" in f.fixes[0].title and "never install a Linux driver inside WSL" in f.fixes[0].title


# --- the CLI: stdin, evidence under -v, JSON fields added ------------------------------------------------------------
def _cli(args, stdin):
    return subprocess.run([sys.executable, "-m", "tunedoc", "doctor", *args], input=stdin, capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])


def test_stdin_free_text_verdict_with_evidence_lines_under_v():
    text = "- **PyTorch Version**: 2.6.0+cu124\n- GPU: NVIDIA GeForce RTX 5090\n- Driver: 570.124.04\n"
    p = _cli(["--from", "-", "-v"], text)
    assert p.returncode == 1, p.stderr
    assert "stdin:1: - **PyTorch Version**: 2.6.0+cu124" in p.stdout
    assert re.search(r"PyTorch 2\.6\.0\+cu124 has no kernels for NVIDIA GeForce RTX 5090", p.stdout)
    assert "paste `nvcc --version`" in p.stdout
    j = json.loads(_cli(["--from", "-", "--json"], text).stdout)
    assert j["facts"]["quoted"]["torch.version"].startswith("stdin:1:")
    assert all("explains" in f for f in j["findings"])


def test_area_lines_name_their_facts():
    from tunedoc.doctor.facts import Facts
    from tunedoc.doctor.render import area_facts

    f = Facts()
    f.torch.version, f.torch.cuda = "2.14.1+cu130", "13.0"
    f.torch.arch_list = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
    f.gpus = []
    assert area_facts(f, "torch") == "torch 2.14.1+cu130, CUDA 13.0, sm_75–sm_120; no GPU to use it"


# --- the id contract -------------------------------------------------------------------------------------------------
IDS_BEFORE_ISSUE_12 = """no-driver container-no-gpu driver-not-loaded driver-library-mismatch driver-too-old wsl-linux-driver
wsl-libcuda-path driver-ok no-gpu mig-device-selection device-order bf16-unsupported flash-attn-unsupported gpu-ok
nvcc-missing nvcc-mismatch libcudart-missing cuda-ok torch-missing torch-cpu-build torch-import-dll torch-import-error
torch-arch-unsupported torch-cuda-unavailable torch-cuda-op-failed torch-env-mismatch cudnn-mismatch
extension-abi-mismatch cuda-oom deepspeed-op-build torch-ok bnb-missing bnb-no-gpu-binary bnb-too-old bnb-import-error
bnb-quant-failed bnb-ok win-libuv win-no-nccl win-triton win-symlinks win-long-paths platform-ok hf-disk-low hf-endpoint
hf-offline hf-ok""".split()


def test_no_finding_id_removed_and_the_new_ones_are_there():
    assert set(IDS_BEFORE_ISSUE_12) <= set(CATALOG)
    assert (CATALOG["container-nvml-lost"].severity, CATALOG["container-nvml-lost"].area) == ("error", "driver")
    assert (CATALOG["torchvision-mismatch"].severity, CATALOG["torchvision-mismatch"].area) == ("error", "torch")
    import tunedoc.doctor.rules as R

    documented = set(re.findall(r"^    ([a-z0-9-]+) +(?:error|warning|info|ok) ", R.__doc__, re.M))
    assert documented == set(CATALOG)


def test_torchvision_for_another_torch_from_pasted_package_rows():
    _, fs = diagnose("torch                     2.6.0a0+gitf28a873           dev_0    <develop>\n"
                     "torchvision               0.20.0.dev20240814+cu121          pypi_0    pypi\n")
    assert "torchvision==0.21.*" in commands(one(fs, "torchvision-mismatch"))
    _, fs = diagnose("- torch 2.5.1+cu124\n- torchvision 0.20.1+cu124\n")
    assert "torchvision-mismatch" not in ids(fs)


def test_deepspeed_messages():
    _, fs = diagnose("Exception: >- DeepSpeed Op Builder: Installed CUDA version 12.1 does not match the version torch "
                     "was compiled with 11.8, unable to compile cuda/cpp extensions without a matching cuda version.\n")
    assert "deepspeed-op-build" in ids(fs, "error")
    _, fs = diagnose("RuntimeError: PyTorch version mismatch! DeepSpeed ops were compiled and installed with a different "
                     "version than what is being used at runtime.\n")
    assert "extension-abi-mismatch" in ids(fs, "error")
