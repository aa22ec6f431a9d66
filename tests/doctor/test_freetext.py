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


def test_v_lists_what_was_read_from_the_text_in_words_not_fact_keys():
    text = ("运行web-ui时显示cuda is no avaible\n>>> torch.__version__\n'2.6.0+cpu'\n- GPU: NVIDIA GeForce RTX 4090\n"
            "| NVIDIA-SMI 550.54 Driver Version: 550.54 CUDA Version: 12.4 |\npeft==0.13.0\n")
    p = _cli(["--from", "-", "-v"], text)
    read = p.stdout.split("Read from the report's text:\n")[1].split("\n\n")[0].splitlines()
    assert "    • the report says CUDA is not available: stdin:1: 运行web-ui时显示cuda is no avaible" in read, read
    assert any(line.startswith("    • PyTorch version: stdin:3:") for line in read), read
    assert not [line for line in read if re.match(r"\s+• [a-z_]+\.[a-z_]+:", line)], read  # no raw key left

    # every key the report parsers quote has words: each `said.` key, and each fact path they fill
    from tunedoc.doctor.render import quoted_label

    doctor = Path(__file__).resolve().parents[2] / "doctor"
    source = "\n".join(f.read_text(encoding="utf-8") for f in doctor.rglob("*.py"))
    said = set(re.findall(r"[\"'](said\.[a-z_]+)[\"']", source))
    paths = set(re.findall(r"(?:\.set|quoted\.setdefault)\(\"([a-z_.]+)\"", source))
    assert "said.cuda_unavailable" in said and "torch.version" in paths
    assert {k: quoted_label(k) for k in said | paths if quoted_label(k) == k} == {}
    assert quoted_label("package.peft") == "package peft"

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


# --- collector A's free-form cases (issue 12): the extractors and signatures they needed, on their real lines ---------
def test_pagefile_winerror_1455_english_and_chinese_locale():
    # enunu-training-kit#8 and Bert-VITS2-Integration-package#5, as pasted
    en = ('OSError: [WinError 1455] The paging file is too small for this operation to complete. Error loading '
          '"C:\\Users\\Nathan\\Desktop\\enunu_training_kit-1.0.0\\python-3.8.10-embed-amd64\\lib\\site-packages\\torch'
          '\\lib\\cudnn_adv_infer64_8.dll" or one of its dependencies.')
    zh = ('**OSError: [WinError 1455] 页面文件太小，无法完成操作。 Error loading "D:\\Bert-VITS2-Integration-Package\\venv'
          '\\lib\\site-packages\\torch\\lib\\cublas64_11.dll" or one of its dependencies.**')
    for text in (en, zh):
        _, fs = diagnose(text)
        f = one(fs, "win-pagefile-small")
        assert f.severity == "error" and f.area == "platform"
        # a memory problem, not a missing DLL or CUDA runtime: neither of those is blamed
        assert not ids(fs) & {"torch-import-dll", "libcudart-missing", "cuda-oom", "torch-cpu-build"}
        titles = " ".join(fx.title for fx in f.fixes).lower()
        assert "page file" in titles and "num_workers" in titles
        assert "page file" in f.detail.lower() or "paging file" in f.detail.lower()
    # the Chinese text alone (no "WinError 1455" in the line) is enough
    _, fs = diagnose("OSError: 页面文件太小，无法完成操作。")
    assert "win-pagefile-small" in ids(fs)


def test_triton_no_matching_distribution_is_windows_unless_linux():
    log = ("Looking in indexes: https://pypi.org/simple, https://pypi.ngc.nvidia.com\n"
           "ERROR: Could not find a version that satisfies the requirement triton (from versions: none)\n"
           "ERROR: No matching distribution found for triton\n")
    _, fs = diagnose(log)  # OmniGen2#11: no OS named, and PyPI has triton for Linux only
    assert ids(fs) == {"win-triton"}
    assert "triton-windows" in commands(one(fs, "win-triton"))
    _, fs = diagnose("OS: Ubuntu 22.04\n" + log)  # on Linux "versions: none" is something else
    assert "win-triton" not in ids(fs)
    with pytest.raises(ReportError):  # another package's error: nothing here for the doctor
        diagnose(log.replace("triton", "triton-windows"))


def test_chinese_sentence_about_windows_and_win10():
    # echomimic_v2#39 and LlamaFactory#7666: "windows下" / "win10下" give the platform, so the triton row holds
    facts, fs = diagnose("windows下triton模块装不上：ModuleNotFoundError: No module named 'triton',")
    assert facts.platform.system == "Windows" and "win-triton" in ids(fs)
    facts, _ = diagnose('我在win10下按照教程pip install -e ".[torch,metrics]" 安装好后 运行web-ui时显示cuda is no avaible')
    assert facts.platform.system == "Windows"
    facts, _ = diagnose("This is how I created the environment on window 10:\n`conda create --name=x python=3.11`")
    assert facts.platform.system == "Windows"
    # a hex hash holding "a400" or a "win32" module name is not a Windows 10 or a GPU
    facts, _ = diagnose('File "C:\\Users\\q\\.cache\\chatglm3-6b\\103caa40027ebfd8450289ca2f278eac4ff26405\\q.py", '
                        'line 126\nPyTorch version: 2.1.2+cu121')
    assert not facts.gpus


def test_cpu_torch_with_the_user_saying_cuda_is_not_available():
    text = ('我在win10下按照教程pip install -e ".[torch,metrics]" 安装好后 运行web-ui时显示cuda is no avaible 把torch卸载掉 '
            '运行时报错：RuntimeError: use_libuv was requested but PyTorch was build without libuv support\n\n'
            ">>> torch.__version__\n'2.6.0+cpu'\n")
    facts, fs = diagnose(text)
    assert facts.torch.cuda_available is False and "said.cuda_unavailable" in facts.quoted
    assert one(fs, "torch-cpu-build").severity == "error" and one(fs, "win-libuv").severity == "warning"
    # the same CPU build printed by collect_env on a machine without a GPU is fine: no complaint, no error
    _, fs = diagnose("PyTorch version: 2.6.0+cpu\nCUDA used to build PyTorch: None\nIs CUDA available: False\n"
                     "OS: Microsoft Windows 11 Pro\n")
    assert "torch-cpu-build" not in ids(fs) and "torch-ok" in ids(fs, "ok")


def test_insufficient_cuda_driver_with_the_drivers_cuda_and_nvrm_line():
    # ethminer#1640, hand-filled template
    text = ("CUDA error: Insufficient CUDA driver: 9020\n\nSystem Configuration:\n"
            "Cuda compilation tools, release 10.0, V10.0.130\n"
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  396.54\n- Operating System: Ubuntu 18.04.1\n")
    facts, fs = diagnose(text)
    assert facts.driver.version == "396.54"
    f = one(fs, "driver-too-old")
    assert f.severity == "error" and "9.2" in f.title
    # no torch here: the fix names the driver CUDA 10.0 (the app's toolkit) needs
    assert any("410.48" in fx.title for fx in f.fixes)


def test_old_torch_pip_command_and_a_bare_driver_version():
    # pytorch#31243: the plain Linux wheel of 1.3.0 is CUDA 10.1, which needs driver 418.39; the reporter has 410.48
    text = ("$ pip install torch===1.3.0 torchvision===0.4.1 -f https://download.pytorch.org/whl/torch_stable.html\n"
            "Python 3.7.5 (default, Oct 25 2019, 15:51:11) \n[GCC 7.3.0] :: Anaconda, Inc. on linux\n"
            ">>> import torch\n>>> torch.cuda.is_available()\nFalse\n\n**Ubuntu1804,\npython37**\n\n410.48,,\n"
            "need higher ??\n")
    facts, fs = diagnose(text)
    assert (facts.torch.version, facts.torch.cuda, facts.driver.version) == ("1.3.0", "10.1", "410.48")
    assert facts.platform.system == "Linux" and facts.python.packages.get("torchvision") == "0.4.1"
    f = one(fs, "driver-too-old")
    assert f.severity == "error" and "10.1" in f.title
    assert "torch-cpu-build" not in ids(fs)
    # the same plain version on Windows is not guessed into a CUDA build
    facts, _ = diagnose("pip install torch==1.3.0\nOS: Windows 10\n")
    assert facts.torch.cuda is None


def test_pip_command_index_url_names_the_torch_cuda():
    # bitsandbytes#807: a working Windows setup described by its install commands
    text = ("This is how I created the environment on window 10:\n\n`conda create --name=llama_2 python=3.11`\n\n"
            "pip3 install torch torchvision torchaudio --index-url https://download.pytorch.org/whl/cu121\n"
            "pip install transformers==4.34.0\n")
    facts, fs = diagnose(text)
    assert facts.torch.cuda == "12.1" and facts.python.packages.get("transformers") == "4.34.0"
    assert not ids(fs, "error") and "torch-ok" in ids(fs, "ok")
    facts, _ = diagnose("pip install torch --index-url https://download.pytorch.org/whl/cpu\nOS: Ubuntu 22.04")
    assert facts.torch.cuda == ""


def test_yolo_environment_banner():
    # ChatGLM3#1197 pasted an Ultralytics banner: torch, its CUDA and the GPU with its memory
    facts, fs = diagnose("Python-3.11.5 torch-2.1.2+cu121 CUDA:0 (NVIDIA GeForce RTX 3060, 12287MiB)\n"
                         "OS                  Windows-10-10.0.19045-SP0\n")
    assert facts.torch.version == "2.1.2+cu121" and facts.python.version == "3.11.5"
    assert [g.name for g in facts.gpus] == ["NVIDIA GeForce RTX 3060"] and facts.gpus[0].memory_total_mb == 12287
    assert {"torch-ok", "gpu-ok"} <= ids(fs, "ok") and not ids(fs, "error")


def test_prose_torch_built_with_cuda_on_a_blackwell_gpu():
    # pytorch#166060: no torch version, but "nightly build with CUDA 12.1" on an RTX 5090: no sm_120 kernels
    text = ("I've recently tested PyTorch (nightly build with CUDA 12.1) on an NVIDIA RTX 5090 and received a "
            'warning:\n"sm_120 is not supported"\n\nGPU: RTX 5090\n\nDriver: 581.42\n\nCUDA: 12.2\n')
    facts, fs = diagnose(text)
    assert facts.torch.cuda == "12.1"
    f = one(fs, "torch-arch-unsupported")
    assert f.severity == "error" and "?" not in f.title
    assert "driver-too-old" not in ids(fs)
