"""Fix command builders: exact commands for this platform, shell and target interpreter.

    pip(facts, "install", "--upgrade", "torch==2.11.0", "--index-url", url)
      -> '/home/u/venv/bin/python -m pip install --upgrade torch==2.11.0 --index-url ...'    (bash)
      -> '& "C:\\Users\\u\\venv\\Scripts\\python.exe" -m pip install ...'                      (powershell)
"""

from __future__ import annotations

import shlex

from tunedoc.doctor import knowledge as K
from tunedoc.doctor.facts import Facts
from tunedoc.doctor.findings import Fix


def shell_of(facts: Facts) -> str:
    system = (facts.platform.system or "").lower()
    if system.startswith("win"):
        return "cmd" if facts.platform.shell == "cmd" else "powershell"
    return "bash"


def python_of(facts: Facts) -> str:
    """The interpreter the fixes act on: the probed target Python, else `python` (what the user typed)."""
    return facts.python.executable or "python"


_PS_SPECIAL = set(" '\"&()$`;{}<>|,@#")
_CMD_SPECIAL = set(" &()^|<>")


def quote(arg: str, shell: str) -> str:
    """Quote one argument for `shell` only when it needs it (`torch>=2.4.1` is a redirection unquoted)."""
    if shell == "bash":
        return shlex.quote(arg)
    if shell == "powershell":
        if not any(c in _PS_SPECIAL for c in arg):
            return arg
        if "$" in arg or "`" in arg or '"' in arg:
            return "'" + arg.replace("'", "''") + "'"  # single quotes: literal, no $ expansion
        return f'"{arg}"'
    return f'"{arg}"' if any(c in _CMD_SPECIAL for c in arg) else arg


def py_cmd(facts: Facts, *args: str) -> str:
    """`<python> -m <args>` for the target interpreter, quoted for the shell. PowerShell calls a quoted path
    with `&`; a full interpreter path is always quoted there."""
    shell = shell_of(facts)
    exe = python_of(facts)
    if shell == "powershell" and ("\\" in exe or "/" in exe):
        head = '& "' + exe + '"'
    elif shell == "powershell":
        head = quote(exe, shell)
        if head[0] in "'\"":
            head = f"& {head}"
    elif shell == "cmd" and ("\\" in exe or " " in exe):
        head = f'"{exe}"'
    else:
        head = quote(exe, shell)
    return " ".join([head, *(quote(a, shell) for a in args)])


def pip(facts: Facts, *args: str) -> str:
    return py_cmd(facts, "-m", "pip", *args)


def set_env(facts: Facts, name: str, value: str) -> str:
    shell = shell_of(facts)
    if shell == "powershell":
        return f'$env:{name} = "{value}"'
    if shell == "cmd":
        return f"set {name}={value}"
    return f"export {name}={shlex.quote(value)}"


def torch_choice(facts: Facts, cc: str | None) -> K.TorchChoice:
    """The torch wheel for a GPU of compute capability `cc` on this machine's driver and platform."""
    return K.best_torch_install(cc, K.driver_cuda(facts.driver.cuda_version, facts.driver.version),
                                facts.platform.system or "Linux")


def torch_install_fix(facts: Facts, version: str | None, variant: str, title: str | None = None) -> Fix:
    url = f"https://download.pytorch.org/whl/{variant}"
    spec = f"torch=={version}" if version else "torch"
    # the same release in another variant (2.11.0+cpu -> 2.11.0+cu128) needs --force-reinstall: pip would keep a
    # local version that already satisfies `torch==2.11.0`
    installed = (facts.torch.version or "").split("+")[0]
    same = bool(version and installed == version)
    # torchvision / torchaudio that are installed move with torch (each release is built against one torch)
    companions = K.torch_companions(version, variant, facts.python.packages) if version else []
    cmds = [pip(facts, "install", "--upgrade", *(["--force-reinstall"] if same else []), spec, *companions,
                "--index-url", url)]
    return Fix(
        title=title or f"Install PyTorch {version or ''} built for CUDA {variant[2:-1]}.{variant[-1]} ({variant})".replace("  ", " "),
        commands=cmds,
        shell=shell_of(facts),
        url="https://pytorch.org/get-started/locally/",
        applicable=True,
    )


def driver_fix(facts: Facts, min_version: str | None, why: str) -> Fix:
    system = (facts.platform.system or "").lower()
    if facts.platform.is_wsl:
        return Fix(title=f"Update the NVIDIA driver on Windows (the host), to {min_version} or newer; never install "
                         f"a Linux driver inside WSL. {why}", commands=[], shell="powershell",
                   url="https://www.nvidia.com/Download/index.aspx")
    if system.startswith("win"):
        return Fix(title=f"Install NVIDIA driver {min_version} or newer (Game Ready or Studio). {why}",
                   commands=[], shell="powershell", url="https://www.nvidia.com/Download/index.aspx")
    distro = (facts.platform.distro or "").lower()
    cmds = []
    if "ubuntu" in distro or "debian" in distro:
        cmds = ["sudo ubuntu-drivers list", "sudo ubuntu-drivers install", "sudo reboot"] if "ubuntu" in distro else \
            ["sudo apt-get update", "sudo apt-get install nvidia-driver", "sudo reboot"]
    return Fix(title=f"Install NVIDIA driver {min_version} or newer, then reboot. {why}".strip(), commands=cmds,
               shell="bash", url="https://docs.nvidia.com/datacenter/tesla/driver-installation-guide/")
