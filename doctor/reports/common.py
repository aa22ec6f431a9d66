"""Small helpers the report parsers share: filling facts without overwriting what is already known."""

from __future__ import annotations

import re

from tunedoc.doctor.facts import GPU, Facts

NA = {"", "n/a", "na", "none", "could not collect", "no cuda", "not found", "not installed", "unknown", "<fill in>"}


def known(value: str | None) -> str | None:
    """A value as printed, or None when the tool printed one of its 'unknown' words."""
    if value is None:
        return None
    v = value.strip().strip("`").strip()
    return None if v.lower() in NA else v


def fill(obj, attr: str, value) -> None:
    """Set obj.attr to value unless it is already known (the first report that says something wins)."""
    if value is None or value == "":
        return
    if getattr(obj, attr) in (None, ""):
        setattr(obj, attr, value)


def norm_pkg(name: str) -> str:
    """pip's normalized project name: 'Flash_Attn' -> 'flash-attn'."""
    return re.sub(r"[-_.]+", "-", name.strip().strip("`")).lower()


def add_package(facts: Facts, name: str, version: str) -> None:
    name, version = norm_pkg(name), version.strip()
    if not name or not version:
        return
    facts.python.packages.setdefault(name, version)
    if name == "torch":
        facts.torch.installed = True
        fill(facts.torch, "version", version)
    elif name in ("bitsandbytes", "bitsandbytes-windows"):
        facts.bnb.installed = True
        fill(facts.bnb, "version", version)


def cuda_from_local(version: str | None) -> str | None:
    """'2.7.0+cu128' -> '12.8'; '1.13.1+cu117' -> '11.7'; None otherwise."""
    m = re.search(r"\+cu(\d{2,3})\b", version or "")
    if not m:
        return None
    d = m.group(1)
    return f"{d[:-1]}.{d[-1]}"


def platform_from(text: str, facts: Facts) -> None:
    """Fill platform facts from an OS or `platform.platform()` string."""
    p = facts.platform
    low = text.lower()
    if "windows" in low or re.match(r"^win(32|64|-)", low):
        fill(p, "system", "Windows")
    elif "linux" in low or "ubuntu" in low or "debian" in low or "centos" in low or "rocky" in low:
        fill(p, "system", "Linux")
    elif "macos" in low or "darwin" in low or "mac os" in low:
        fill(p, "system", "Darwin")
    if "microsoft-standard" in low or "wsl2" in low or re.search(r"-microsoft\b", low):
        p.is_wsl = True
    m = re.search(r"\b(x86_64|amd64|aarch64|arm64)\b", low)
    if m:
        fill(p, "machine", {"amd64": "AMD64" if p.system == "Windows" else "x86_64"}.get(m.group(1), m.group(1)))
    m = re.match(r"^(?:linux|windows)-([\w.-]+?)(?:-x86_64|-amd64|-aarch64|-sp\d|$)", low)
    if m:
        fill(p, "release", m.group(1))


def add_gpu(facts: Facts, name: str, index: int | None = None, **kw) -> GPU:
    """Add a GPU by name unless one with that index (or, without an index, that name) is known."""
    name = name.strip()
    if facts.gpus is None:
        facts.gpus = []
    for g in facts.gpus:
        if (index is not None and g.index == index) or (index is None and g.name == name):
            for k, v in kw.items():
                fill(g, k, v)
            fill(g, "name", name)
            return g
    g = GPU(index=index if index is not None else len(facts.gpus), name=name)
    for k, v in kw.items():
        setattr(g, k, v)
    facts.gpus.append(g)
    return g


def kv(line: str) -> tuple[str, str] | None:
    """'Key name: value' -> ('key name', 'value'); markdown list bullets and backticks removed."""
    m = re.match(r"^\s*(?:[-*]\s+)?`?([A-Za-z][^:`]{0,60}?)`?(\s+version)?(?:\s*\([^)]*\))?\s*:\s*(.*)$", line)
    if not m:
        return None
    key = (m.group(1) + (m.group(2) or "")).strip().lower()
    return key, m.group(3).strip()
