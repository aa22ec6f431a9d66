"""Platform, environment variables and Hugging Face cache probes. In-process, no child processes but `ldconfig`.

Every function fills its part of Facts and raises nothing the runner does not catch.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from pathlib import Path

from tunedoc.doctor.facts import Facts

ENV_VARS = (
    "CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "HF_HOME", "HF_HUB_CACHE", "HF_ENDPOINT", "HF_HUB_OFFLINE",
    "USE_LIBUV", "PYTORCH_CUDA_ALLOC_CONF", "BNB_CUDA_VERSION", "CUDA_HOME", "CUDA_PATH", "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES", "TORCH_CUDA_ARCH_LIST", "HF_HUB_ENABLE_HF_TRANSFER",
)


def probe_platform(facts: Facts) -> None:
    p = facts.platform
    uname = platform.uname()
    p.system = uname.system
    p.release = uname.release
    p.machine = uname.machine
    p.hostname = uname.node
    if p.system == "Linux":
        p.distro = _os_release()
        p.is_wsl = "microsoft" in uname.release.lower() or bool(os.environ.get("WSL_DISTRO_NAME"))
        p.in_container, p.container_kind = _container()
        p.pci_nvidia_devices = _pci_nvidia()
        if p.is_wsl:
            lib = Path("/usr/lib/wsl/lib")
            p.wsl_lib_dir = lib.is_dir()
            p.wsl_libcuda = any(lib.glob("libcuda.so*")) if p.wsl_lib_dir else False
            p.wsl_linux_driver = _linux_driver_in_wsl()
            # Under WSL the GPU is not on a PCI bus the guest sees: the Windows driver provides it
            p.pci_nvidia_devices = None
        try:
            text = Path("/proc/driver/nvidia/version").read_text()
            import re

            m = re.search(r"Kernel Module\s+(?:for \S+\s+)?([\d.]+)", text)
            facts.driver.kernel_module_version = m.group(1) if m else None
        except OSError:
            pass
    elif p.system == "Windows":
        p.distro = platform.platform()
        p.in_container = False
        p.long_paths_enabled = _win_long_paths()
    elif p.system == "Darwin":
        p.distro = f"macOS {platform.mac_ver()[0]}"
        p.in_container = False
        p.pci_nvidia_devices = 0
    # tried everywhere (cheap): Windows without Developer Mode, or a Linux temp dir on a FAT/NTFS mount, says no
    p.symlinks_supported = _can_symlink()
    p.shell = _shell(p.system)


def _os_release() -> str | None:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def _container() -> tuple[bool, str | None]:
    if Path("/.dockerenv").exists():
        return True, "docker"
    if Path("/run/.containerenv").exists():
        return True, "podman"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return True, "kubernetes"
    try:
        cgroup = Path("/proc/1/cgroup").read_text()
        for kind in ("docker", "kubepods", "containerd", "lxc"):
            if kind in cgroup:
                return True, "kubernetes" if kind == "kubepods" else kind
    except OSError:
        pass
    if os.environ.get("container"):
        return True, os.environ["container"]
    return False, None


def _pci_nvidia() -> int | None:
    root = Path("/sys/bus/pci/devices")
    if not root.is_dir():
        return None
    n = 0
    for dev in root.iterdir():
        try:
            vendor = (dev / "vendor").read_text().strip()
            cls = (dev / "class").read_text().strip()
        except OSError:
            continue
        # 0x10de = NVIDIA; class 0x03xxxx = display controller (VGA 0x0300, 3D 0x0302)
        if vendor == "0x10de" and cls.startswith("0x03"):
            n += 1
    return n


def _linux_driver_in_wsl() -> str | None:
    """A Linux NVIDIA driver installed inside WSL shadows the Windows one (/usr/lib/wsl/lib)."""
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"):
        for f in Path(d).glob("libnvidia-ml.so.*"):
            if f.is_file() and not f.is_symlink():
                return str(f)
    status = Path("/var/lib/dpkg/status")
    try:
        import re

        m = re.search(r"^Package: (nvidia-driver-\d+\S*)\nStatus: install ok installed", status.read_text(), re.M)
        if m:
            return m.group(1)
    except OSError:
        pass
    return None


def _win_long_paths() -> bool | None:
    try:
        import winreg  # type: ignore[import-not-found]

        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SYSTEM\CurrentControlSet\Control\FileSystem") as key:
            return bool(winreg.QueryValueEx(key, "LongPathsEnabled")[0])
    except Exception:
        return None


def _can_symlink() -> bool | None:
    try:
        with tempfile.TemporaryDirectory() as d:
            src = Path(d, "a")
            src.write_text("x")
            os.symlink(src, Path(d, "b"))
        return True
    except OSError:
        return False
    except Exception:
        return None


def _shell(system: str | None) -> str | None:
    if system == "Windows":
        if os.environ.get("PSModulePath") and "powershell" in (os.environ.get("PSModulePath") or "").lower():
            # PSModulePath is set in cmd too on modern Windows; prefer the parent's name when we can get it
            try:
                import psutil

                parent = psutil.Process().parent()
                name = (parent.name() if parent else "").lower()
                if "cmd" in name:
                    return "cmd"
            except Exception:
                pass
            return "powershell"
        return "cmd"
    shell = os.environ.get("SHELL", "")
    return Path(shell).name or "bash" if shell else "bash"


def probe_env(facts: Facts) -> None:
    e = facts.env
    e.vars = {k: os.environ[k] for k in ENV_VARS if k in os.environ}
    e.hf_token_set = bool(os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"))
    entries = []
    for var in ("PATH", "LD_LIBRARY_PATH"):
        for part in os.environ.get(var, "").split(os.pathsep):
            if part and "cuda" in part.lower():
                entries.append(f"{var}: {part}")
    e.cuda_path_entries = entries


def probe_hf(facts: Facts) -> None:
    h = facts.hf
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    h.home = home
    h.hub_cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    h.endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    token_file = Path(os.environ.get("HF_TOKEN_PATH") or Path(home, "token"))
    h.token_present = bool(
        os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or token_file.is_file()
    )
    target = Path(h.hub_cache)
    while not target.exists() and target != target.parent:
        target = target.parent
    usage = shutil.disk_usage(target)
    h.disk_free_bytes, h.disk_total_bytes = usage.free, usage.total
    cache = Path(h.hub_cache)
    if cache.is_dir():
        total = 0
        for blobs in cache.glob("*/blobs"):
            for f in blobs.iterdir():
                try:
                    total += f.stat().st_size
                except OSError:
                    pass
        h.cache_bytes = total
    else:
        h.cache_bytes = 0
