"""`nvcc --version` and `python -m bitsandbytes` (the <= 0.42 "BUG REPORT" format, 0.43's "BUG REPORT
INFORMATION" and the >= 0.44 diagnostics)."""

from __future__ import annotations

import re

from tunedoc.doctor.facts import Facts
from tunedoc.doctor.reports.common import add_package, fill, known, platform_from
from tunedoc.doctor.reports.text import Report

NVCC = re.compile(r"Cuda compilation tools, release (?P<v>\d+\.\d+), V(?P<full>[\d.]+)")


def parse_nvcc(report: Report, facts: Facts) -> bool:
    m = NVCC.search(report.text) if "Cuda compilation tools" in report.text else None  # the first one wins
    if m:
        fill(facts.toolkit, "nvcc_version", m.group("v"))
    return m is not None


BNB_NEW = re.compile(r"^=+ bitsandbytes v(?P<v>[\w.+-]+) =+$")
BNB_NEW_ANY = re.compile(r"(?m)^[^\S\n]*=+ bitsandbytes v[\w.+-]+ =+[^\S\n]*$")
BNB_OLD = ("===================================BUG REPORT===================================",
           "BUG REPORT INFORMATION", "Welcome to bitsandbytes. For bug reports, please run")
BNB_BIN = re.compile(r"^\s*(?:bin|CUDA SETUP: Loading binary)\s+(?P<path>\S*libbitsandbytes_(?P<kind>cpu|cuda\d+\w*)\.(?:so|dll))")
BNB_SETTINGS = re.compile(r"PyTorch settings found: CUDA_VERSION=(?P<cuda>\d+), Highest Compute Capability: "
                          r"\(?(?P<major>\d+)(?:\.|, )(?P<minor>\d+)\)?")
BNB_SPECS = re.compile(r"CUDASpecs\(highest_compute_capability=\((?P<major>\d+), (?P<minor>\d+)\), "
                       r"cuda_version_string='(?P<cuda>\d+)'")


def _cuda(digits: str) -> str:
    return f"{digits[:-1]}.{digits[-1]}"


def parse_bnb(report: Report, facts: Facts) -> bool:
    texts = report.texts
    new = " bitsandbytes v" in report.text and BNB_NEW_ANY.search(report.text)
    old = any(h in report.text for h in BNB_OLD)
    if not (new or old):
        return False
    b, t = facts.bnb, facts.torch
    b.installed = True
    section = None
    for raw in texts:
        s = raw.strip()
        m = BNB_NEW.match(s)
        if m:
            fill(b, "version", m.group("v"))
            continue
        if s.startswith("Related packages:"):
            section = "packages"
            continue
        if section == "packages":
            pm = re.match(r"^([\w.-]+): (.+)$", s)
            if pm and raw.startswith((" ", "\t")):
                if known(pm.group(2)):
                    add_package(facts, pm.group(1), pm.group(2))
                continue
            section = None
        if s.startswith("Platform: "):
            platform_from(s[len("Platform: "):], facts)
        elif s.startswith("Python: "):
            fill(facts.python, "version", known(s[len("Python: "):]))
        elif s.startswith("PyTorch: "):
            v = known(s[len("PyTorch: "):])
            if v:
                add_package(facts, "torch", v)
                t.import_ok = True  # the diagnostics import torch
        elif s.startswith("CUDA: ") and raw.startswith((" ", "\t")):
            v = known(s[len("CUDA: "):])
            t.cuda = v if v else (t.cuda or "")
        m = BNB_BIN.search(raw)
        if m:
            b.native_lib = m.group("path").replace("\\", "/").rsplit("/", 1)[-1]
            b.lib_kind = "cpu" if m.group("kind") == "cpu" else "cuda"
        m = BNB_SETTINGS.search(raw) or BNB_SPECS.search(raw)
        if m:
            fill(t, "cuda", _cuda(m.group("cuda")))
            t.import_ok = True
            t.cuda_available = True  # bitsandbytes found a GPU to read its capability from
            cc = f"{m.group('major')}.{m.group('minor')}"
            if not any(d.get("capability") == cc for d in t.devices):
                t.devices.append({"capability": cc})
        if s in ("SUCCESS!", "Installation was successful!"):
            b.import_ok = True
            if b.lib_kind is None and t.cuda:
                b.lib_kind = "cuda"
        if "bitsandbytes is running as CPU-only" in s or "compiled without GPU support" in s:
            fill(b, "lib_kind", "cpu")
    return True
