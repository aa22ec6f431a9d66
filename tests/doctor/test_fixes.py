"""Fix commands: the exact text a user pastes, for their shell and their target interpreter."""

from __future__ import annotations

import pytest

from tunedoc.doctor.facts import Facts
from tunedoc.doctor.fixes import driver_fix, pip, python_of, quote, set_env, shell_of, torch_install_fix

WIN_PY = r"C:\Users\x\venv\Scripts\python.exe"
WIN_PY_SPACE = r"C:\Users\Jane Doe\AppData\Local\Programs\Python\Python311\python.exe"


def facts(system="Linux", exe=None, shell=None, torch_version=None, is_wsl=None, distro=None) -> Facts:
    f = Facts()
    f.platform.system, f.platform.shell, f.platform.is_wsl, f.platform.distro = system, shell, is_wsl, distro
    f.python.executable = exe
    f.torch.version = torch_version
    return f


@pytest.mark.parametrize("system, shell, want", [
    ("Linux", None, "bash"), ("Linux", "zsh", "bash"), ("Darwin", None, "bash"), (None, None, "bash"),
    ("Windows", None, "powershell"), ("Windows", "powershell", "powershell"), ("Windows", "cmd", "cmd"),
])
def test_shell_of(system, shell, want):
    assert shell_of(facts(system, shell=shell)) == want


@pytest.mark.parametrize("f, args, want", [
    (facts("Linux", "/home/u/venv/bin/python"), ("install", "--upgrade", "bitsandbytes"),
     "/home/u/venv/bin/python -m pip install --upgrade bitsandbytes"),
    (facts("Linux", "/home/u/my envs/bin/python"), ("install", "torch>=2.4.1"),
     "'/home/u/my envs/bin/python' -m pip install 'torch>=2.4.1'"),
    (facts("Linux"), ("install", "bitsandbytes"), "python -m pip install bitsandbytes"),
    (facts("Windows", WIN_PY), ("install", "--upgrade", "bitsandbytes"),
     '& "C:\\Users\\x\\venv\\Scripts\\python.exe" -m pip install --upgrade bitsandbytes'),
    (facts("Windows", WIN_PY_SPACE), ("install", "torch>=2.4.1"),
     '& "C:\\Users\\Jane Doe\\AppData\\Local\\Programs\\Python\\Python311\\python.exe" -m pip install "torch>=2.4.1"'),
    (facts("Windows"), ("install", "triton-windows"), "python -m pip install triton-windows"),
    (facts("Windows", WIN_PY, shell="cmd"), ("install", "torch>=2.4.1"),
     '"C:\\Users\\x\\venv\\Scripts\\python.exe" -m pip install "torch>=2.4.1"'),
])
def test_pip_commands(f, args, want):
    assert pip(f, *args) == want


def test_python_falls_back_to_python():
    assert python_of(facts("Linux")) == "python"
    assert python_of(facts("Linux", "/usr/bin/python3.11")) == "/usr/bin/python3.11"


@pytest.mark.parametrize("arg, shell, want", [
    ("plain", "powershell", "plain"),
    ("a b", "powershell", '"a b"'),
    ("$HOME", "powershell", "'$HOME'"),  # no expansion inside single quotes
    ("it's $x", "powershell", "'it''s $x'"),
    ("a|b", "cmd", '"a|b"'),
    ("a b", "bash", "'a b'"),
])
def test_quote(arg, shell, want):
    assert quote(arg, shell) == want


@pytest.mark.parametrize("system, shell, want", [
    ("Windows", None, '$env:USE_LIBUV = "0"'),
    ("Windows", "cmd", "set USE_LIBUV=0"),
    ("Linux", None, "export USE_LIBUV=0"),
])
def test_set_env(system, shell, want):
    assert set_env(facts(system, shell=shell), "USE_LIBUV", "0") == want


def test_torch_install_fix_exact_command_and_applicable():
    fx = torch_install_fix(facts("Linux", "/v/bin/python", torch_version="2.5.1+cu124"), "2.11.0", "cu128")
    assert fx.commands == ["/v/bin/python -m pip install --upgrade torch==2.11.0 "
                           "--index-url https://download.pytorch.org/whl/cu128"]
    assert fx.applicable and fx.shell == "bash"
    assert "12.8" in fx.title and "cu128" in fx.title


def test_torch_install_fix_same_release_other_variant_forces_reinstall():
    # pip keeps 2.11.0+cpu for `torch==2.11.0` unless told to reinstall
    fx = torch_install_fix(facts("Windows", WIN_PY, torch_version="2.11.0+cpu"), "2.11.0", "cu128")
    assert fx.commands == ['& "C:\\Users\\x\\venv\\Scripts\\python.exe" -m pip install --upgrade --force-reinstall '
                           'torch==2.11.0 --index-url https://download.pytorch.org/whl/cu128']
    assert fx.shell == "powershell"


def test_torch_install_fix_moves_the_installed_torchvision_and_torchaudio_with_torch():
    # left behind, a torchvision built for the old torch breaks at import ("operator torchvision::nms does not
    # exist"); torchaudio stopped at 2.11, which accepts torch >= 2.11
    f = facts("Linux", "/v/bin/python", torch_version="2.6.0+cu124")
    f.python.packages.update({"torch": "2.6.0", "torchvision": "0.21.0", "torchaudio": "2.6.0"})
    assert torch_install_fix(f, "2.14.0", "cu130").commands == [
        "/v/bin/python -m pip install --upgrade torch==2.14.0 'torchvision==0.29.*' 'torchaudio==2.11.*' "
        "--index-url https://download.pytorch.org/whl/cu130"]
    assert torch_install_fix(f, "2.11.0", "cu128").commands == [
        "/v/bin/python -m pip install --upgrade torch==2.11.0 'torchvision==0.26.*' 'torchaudio==2.11.*' "
        "--index-url https://download.pytorch.org/whl/cu128"]
    f.python.packages["torchaudio"] = "2.11.0"  # already the last one: it serves 2.14 as it is
    assert "torchaudio" not in torch_install_fix(f, "2.14.0", "cu130").commands[0]
    del f.python.packages["torchvision"]  # nothing installed, nothing added
    assert torch_install_fix(f, "2.14.0", "cu130").commands == [
        "/v/bin/python -m pip install --upgrade torch==2.14.0 --index-url https://download.pytorch.org/whl/cu130"]


def test_driver_fixes_are_never_applicable():
    ubuntu = driver_fix(facts("Linux", distro="Ubuntu 22.04.4 LTS"), "570.86.10", "")
    assert ubuntu.commands == ["sudo ubuntu-drivers list", "sudo ubuntu-drivers install", "sudo reboot"]
    wsl = driver_fix(facts("Linux", is_wsl=True, distro="Ubuntu 24.04"), "571.96", "")
    assert wsl.commands == [] and "Windows" in wsl.title and "never install" in wsl.title
    win = driver_fix(facts("Windows"), "571.96", "")
    assert "571.96" in win.title and win.url
    assert not any(f.applicable for f in (ubuntu, wsl, win))
