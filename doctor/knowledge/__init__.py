"""The doctor's knowledge: data files beside this module (every row with its source), and lookups over them.

    lookup_gpu("NVIDIA GeForce RTX 4090") -> GpuInfo(cc="8.9", family="Ada Lovelace", vram_gb=24, bf16=True)
    min_driver("12.8", "Linux") -> "570.86.10"
    torch_arch_list("2.7.1", "cu128") -> ["sm_75", ..., "sm_120"]
    best_torch_install("12.0", "12.8", "Windows") -> TorchChoice(version="2.11.0", variant="cu128", ...)
    best_torch_install("12.0", "13.0", "Linux") -> TorchChoice(version="2.14.0", variant="cu130", ...)
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from packaging.version import InvalidVersion, Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).parent
TORCH_INDEX = "https://download.pytorch.org/whl"


@lru_cache(maxsize=None)
def load(name: str) -> dict:
    return tomllib.loads((HERE / f"{name}.toml").read_text(encoding="utf-8"))


# --- GPUs -------------------------------------------------------------------------------------------------------
@dataclass
class GpuInfo:
    name: str
    cc: str
    family: str
    vram_gb: float
    bf16: bool
    source: str = ""


def family_of(cc: str | None) -> dict | None:
    if not cc:
        return None
    for row in load("families")["cc"]:
        if row["cc"] == cc:
            return row
    major = cc.split(".")[0]
    same = [r for r in load("families")["cc"] if r["cc"].split(".")[0] == major]
    return same[-1] if same else None


def _norm(name: str) -> str:
    n = name.lower()
    for word in ("nvidia", "geforce", "tesla", "graphics", "laptop gpu", "gpu"):
        n = n.replace(word, " ")
    return re.sub(r"[^a-z0-9]", "", n)


def lookup_gpu(name: str) -> GpuInfo | None:
    """A GPU by marketing or tool name: "NVIDIA GeForce RTX 4090", "rtx4090", "4090", "A100-SXM4-80GB", "H100"."""
    if not name or not name.strip():
        return None
    want = _norm(name)
    mem = re.search(r"(\d+)\s*gb", name.lower())
    rows = load("gpus")["gpu"]
    best, best_score = None, 0
    for row in rows:
        for cand in [row["name"], *row.get("aliases", [])]:
            c = _norm(cand)
            if not c:
                continue
            if c == want:
                score = 100
            elif want.endswith(c) or c.endswith(want) or want.startswith(c):
                # "rtx4090" vs "4090"; longer matches win ("rtx4060ti16gb" over "rtx4060ti")
                score = 50 + min(len(c), len(want))
            else:
                continue
            if mem and str(int(row["vram_gb"])) == mem.group(1):
                score += 5
            if score > best_score:
                best, best_score = row, score
    if best is None:
        return None
    fam = family_of(best["cc"]) or {}
    return GpuInfo(name=best["name"], cc=best["cc"], family=fam.get("family", "?"), vram_gb=float(best["vram_gb"]),
                   bf16=bool(fam.get("bf16", False)), source=best.get("source", ""))


# --- CUDA and drivers -------------------------------------------------------------------------------------------
def vkey(v: str | None) -> tuple[int, ...]:
    """'570.86.10' -> (570, 86, 10); tolerant of junk."""
    return tuple(int(x) for x in re.findall(r"\d+", v or ""))


def min_driver(cuda: str, system: str = "Linux") -> str | None:
    """The driver bundled with CUDA `cuda` (full support). None for an unknown version."""
    col = "windows" if (system or "").lower().startswith("win") else "linux"
    want = vkey(cuda)[:2]
    for row in load("cuda")["cuda"]:
        if vkey(row["version"])[:2] == want:
            return row[col]
    return None


def family_min_driver(cuda: str) -> str | None:
    """Minor-version-compatibility floor: the oldest driver any `cuda` major runtime runs on."""
    major = str(vkey(cuda)[0]) if vkey(cuda) else None
    return load("cuda")["family_min"].get(major) if major else None


def driver_max_cuda(driver_version: str) -> str | None:
    """The newest CUDA whose bundled driver this driver meets (Linux table), e.g. '550.54.15' -> '12.4'."""
    best = None
    for row in load("cuda")["cuda"]:
        if vkey(driver_version) >= vkey(row["linux"]):
            best = row["version"]
    return best


def driver_cuda(cuda_version: str | None, driver_version: str | None) -> str | None:
    """The newest CUDA this driver runs: what it reported (NVML, nvidia-smi), else read from its version through the
    driver table (a pasted collect_env gives "Nvidia driver version: 570.124.04" and no CUDA version)."""
    return cuda_version or (driver_max_cuda(driver_version) if driver_version else None)


# --- PyTorch ----------------------------------------------------------------------------------------------------
@dataclass
class TorchChoice:
    version: str | None  # "2.11.0"
    variant: str | None  # "cu128"
    index_url: str | None
    why: str
    driver_needed: str | None = None  # driver the variant wants, when the current one is older


def _minor(version: str) -> str:
    v = vkey(version.split("+")[0])
    return f"{v[0]}.{v[1]}" if len(v) >= 2 else version


def torch_release(version: str) -> dict | None:
    m = _minor(version)
    for row in load("torch")["release"]:
        if row["version"] == m:
            return row
    return None


def pypi_default_cuda(torch_version: str | None) -> str | None:
    """The CUDA of the plain (unsuffixed) Linux wheel of an old release: '1.3.0' -> '10.1'; None when unknown."""
    if not torch_version or "+" in torch_version:
        return None
    return load("torch").get("pypi_default", {}).get("cuda", {}).get(_minor(torch_version))


def torch_variants(torch_version: str) -> list[str]:
    row = torch_release(torch_version)
    return list(row["variants"]) if row else []


def torch_arch_list(torch_version: str, variant: str, system: str = "Linux") -> list[str] | None:
    row = torch_release(torch_version)
    if not row or variant not in row["variants"]:
        return None
    arch = list(load("torch")["arch"][row["variants"][variant]])
    if (system or "").lower().startswith("win") and variant in ("cu118", "cu121", "cu124", "cu126"):
        arch.insert(2, "sm_61")  # Windows pre-cu128 wheels list sm_61 (pytorch/pytorch#159847)
    return arch


def variant_of(torch_version: str | None, torch_cuda: str | None) -> str | None:
    """'2.7.1+cu128' -> 'cu128'; else from torch.version.cuda '12.8' -> 'cu128'; None for a CPU build."""
    if torch_version and "+" in torch_version:
        local = torch_version.split("+", 1)[1]
        if local.startswith("cu"):
            return local
        if local == "cpu":
            return None
    if torch_cuda:
        v = vkey(torch_cuda)
        return f"cu{v[0]}{v[1]}" if len(v) >= 2 else None
    return None


def arch_supports(arch_list: list[str], cc: str) -> bool:
    """Does a build with `arch_list` run on compute capability `cc`? SASS of the same major with minor <= ours
    runs (binary compatibility); PTX (compute_XY) of an equal or older arch JITs. Never across majors for SASS."""
    major, minor = (int(x) for x in cc.split("."))
    ours = major * 10 + minor
    for a in arch_list:
        m = re.match(r"(sm|compute)_(\d+)([a-z]?)$", a)
        if not m:
            continue
        n = int(m.group(2))
        amaj, amin = divmod(n, 10)
        if m.group(1) == "sm" and amaj == major and amin <= minor and not m.group(3):
            return True
        if m.group(1) == "compute" and n <= ours:
            return True
    return False


def min_torch() -> str:
    """The oldest torch release tunedoc's stack (transformers 5) accepts; fixes never suggest an older one."""
    return load("torch")["tunedoc"]["min_torch"]


def _cuda_of(variant: str) -> str:
    d = variant[2:]
    return f"{d[:-1]}.{d[-1]}"


def best_torch_install(cc: str | None, driver_cuda: str | None, system: str = "Linux") -> TorchChoice:
    """The torch wheel to install for a GPU of compute capability `cc` on a driver supporting `driver_cuda`.

    Only releases tunedoc can use (>= min_torch()) whose arch list runs `cc`. Among them the newest release that
    runs on this driver wins: fully (variant CUDA <= driver CUDA; cu128 preferred) or else through CUDA minor-version
    compatibility (same CUDA major; the lowest such variant). When the driver is too old for the GPU itself (an RTX
    50 needs CUDA 12.8) or for every candidate, the choice names the driver it needs (`driver_needed`)."""
    floor = vkey(min_torch())
    releases = sorted((r for r in load("torch")["release"] if vkey(r["version"]) >= floor),
                      key=lambda r: vkey(r["version"]), reverse=True)
    preference = ["cu128", "cu126", "cu130", "cu129", "cu124", "cu121", "cu118"]
    candidates = []

    def order(rel):  # the release's own preference (its stable CUDA first), else the general one
        pref = rel.get("prefer") or preference
        return sorted(rel["variants"], key=lambda v: pref.index(v) if v in pref else 9)

    for rel in releases:
        for variant in order(rel):
            arch = torch_arch_list(rel["version"], variant, system) or []
            if cc and not arch_supports(arch, cc):
                continue
            candidates.append((rel, variant))
    if not candidates:
        return TorchChoice(None, None, None, f"no PyTorch >= {min_torch()} wheel has kernels for compute "
                                             f"capability {cc}")

    def choice(rel, variant, why, need=None):
        return TorchChoice(rel["latest"], variant, f"{TORCH_INDEX}/{variant}", why, driver_needed=need)

    gpu_txt = f" has kernels for this GPU (compute capability {cc})" if cc else ""
    gpu_floor = (family_of(cc) or {}).get("min_cuda") if cc else None
    if driver_cuda and not (gpu_floor and vkey(driver_cuda) < vkey(gpu_floor)):
        dv = vkey(driver_cuda)
        for rel in releases:
            mine = [v for r, v in candidates if r is rel]
            full = [v for v in mine if vkey(_cuda_of(v)) <= dv]
            if full:
                newest, nv = candidates[0]
                later = "" if newest is rel else (f"; a driver >= {min_driver(_cuda_of(nv), system)} would allow "
                                                  f"the newest, torch {newest['latest']} {nv}")
                return choice(rel, full[0], f"torch {rel['latest']} {full[0]}{gpu_txt} and runs on this driver "
                                            f"(CUDA {driver_cuda}){later}")
            compat = sorted((v for v in mine if vkey(_cuda_of(v))[:1] == dv[:1]), key=lambda v: vkey(_cuda_of(v)))
            if compat:
                return choice(rel, compat[0], f"torch {rel['latest']} {compat[0]}{gpu_txt} and runs on this driver "
                                              f"(CUDA {driver_cuda}) through CUDA minor-version compatibility; a "
                              f"driver >= {min_driver(_cuda_of(compat[0]), system)} gives full support")
    rel, variant = candidates[0]  # newest release, its preferred variant (candidates keep order())
    need_cuda = max([_cuda_of(variant)] + ([gpu_floor] if gpu_floor else []), key=vkey)
    floor = min_driver(need_cuda, system)
    why = f"torch {rel['latest']} {variant}{gpu_txt}" + (
        f"; it needs a driver for CUDA {need_cuda} (>= {floor})" if floor else "")
    return choice(rel, variant, why, floor if driver_cuda else None)  # an unknown driver: said, not demanded


def torch_companions(version: str, variant: str | None, installed: dict[str, str]) -> list[str]:
    """pip requirements that keep the installed torchvision / torchaudio matching torch `version`, e.g.
    ("2.14.0", "cu130", {"torchvision": "0.21.0"}) -> ["torchvision==0.29.*"]. Only packages already installed."""
    c = load("torch")["companions"]
    v = vkey(version)
    if len(v) < 2:
        return []
    out = []
    if "torchvision" in installed:
        out.append(f"torchvision==0.{v[1] + c['torchvision_offset']}.*")
    if "torchaudio" in installed and variant not in c["no_torchaudio"]:
        last = vkey(c["torchaudio_last"])
        if v[:2] <= last:
            out.append(f"torchaudio=={v[0]}.{v[1]}.*")
        elif vkey(installed["torchaudio"])[:2] < last:  # an older torchaudio pins an older torch
            out.append(f"torchaudio=={last[0]}.{last[1]}.*")
    return out


# --- bitsandbytes -----------------------------------------------------------------------------------------------
def bnb_min(key: str) -> tuple[str, str] | None:
    row = load("bnb")["min"].get(key)
    return (row["version"], row["source"]) if row else None


def version_lt(a: str | None, b: str) -> bool:
    try:
        return a is not None and Version(a.split("+")[0]) < Version(b)
    except InvalidVersion:
        return False


# --- several GPUs -----------------------------------------------------------------------------------------------
def no_p2p(name: str | None) -> dict | None:
    """The `no_p2p` row for a GPU without peer-to-peer access between cards of its kind ("NVIDIA GeForce RTX 4090"
    -> the RTX 40 row), else None."""
    if not name:
        return None
    n = re.sub(r"^NVIDIA\s+", "", name.strip())
    for row in load("multigpu")["no_p2p"]:
        if n.startswith(row["name_prefix"]):
            return row
    return None
