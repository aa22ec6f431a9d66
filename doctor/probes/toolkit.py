"""CUDA toolkit probe: nvcc (PATH, CUDA_HOME, CUDA_PATH, /usr/local/cuda), and libcudart on the loader path."""

from __future__ import annotations

import os
import platform
import re
import shutil
from pathlib import Path

from tunedoc.doctor.facts import Facts
from tunedoc.doctor.probes.proc import run_command


def probe_toolkit(facts: Facts, timeout: float = 15) -> None:
    t = facts.toolkit
    t.cuda_home = os.environ.get("CUDA_HOME")
    t.cuda_path = os.environ.get("CUDA_PATH")
    exe = "nvcc.exe" if platform.system() == "Windows" else "nvcc"
    nvcc = shutil.which("nvcc")
    if not nvcc:
        for root in filter(None, (t.cuda_home, t.cuda_path, "/usr/local/cuda")):
            cand = Path(root, "bin", exe)
            if cand.is_file():
                nvcc = str(cand)
                break
    t.nvcc_path = nvcc
    if nvcc:
        res = run_command([nvcc, "--version"], timeout=timeout)
        m = re.search(r"release (\d+\.\d+)", res.stdout)
        t.nvcc_version = m.group(1) if m else None
    t.libcudart = _libcudart(t)


def _libcudart(t) -> list[str]:
    found: list[str] = []
    if platform.system() == "Windows":
        for root in filter(None, (t.cuda_path, t.cuda_home)):
            found += [str(p) for p in Path(root, "bin").glob("cudart64_*.dll")]
        return sorted(set(found))
    res = run_command(["ldconfig", "-p"], timeout=10)
    for line in res.stdout.splitlines():
        m = re.search(r"(libcudart\.so[\d.]*)\s.*=>\s*(\S+)", line)
        if m:
            found.append(m.group(2))
    for root in filter(None, (t.cuda_home, "/usr/local/cuda")):
        for sub in ("lib64", "lib", "targets/x86_64-linux/lib"):
            found += [str(p) for p in Path(root, sub).glob("libcudart.so*")]
    for part in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        if part:
            found += [str(p) for p in Path(part).glob("libcudart.so*")]
    return sorted(set(found))
