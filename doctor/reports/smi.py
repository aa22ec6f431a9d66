"""`nvidia-smi` (the table, every driver generation, Linux and Windows) and `nvidia-smi -q`, plus its failures."""

from __future__ import annotations

import re

from tunedoc.doctor.facts import Facts
from tunedoc.doctor.reports.common import add_gpu, fill
from tunedoc.doctor.reports.text import Report

HEADER = re.compile(r"NVIDIA-SMI (?P<smi>[\d.]+)\s+Driver Version: (?P<driver>[\d.]+)(?:\s+CUDA Version: (?P<cuda>[\d.]+|N/A))?")
# |   0  NVIDIA GeForce RTX 5090        Off |   00000000:01:00.0  On |                  N/A |
# |   0  NVIDIA GeForce RTX 4090      WDDM  |   00000000:01:00.0  On |                  Off |
ROW1 = re.compile(r"^\|\s*(?P<i>\d+)\s+(?P<name>.+?)\s+(?P<mode>On|Off|WDDM|TCC|MCDM)\s*\|\s*(?P<bus>[0-9A-Fa-f]{4,8}:"
                  r"[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)\s+(?:On|Off)\s*\|")
MEM = re.compile(r"(?P<used>\d+)\s*MiB\s*/\s*(?P<total>\d+)\s*MiB")
ROW2 = re.compile(r"^\|\s*(?:N/A|\d+%)\s+(?:N/A|\d+C)\s+\S+")
ROW3_MIG = re.compile(r"^\|\s*\|\s*\|\s*(?P<mig>Enabled|Disabled|N/A)\s*\|$")
SMI_FAILURES = ("NVIDIA-SMI has failed", "Failed to initialize NVML", "No devices were found",
                "couldn't communicate with the NVIDIA driver")


# a line ROW1 can match (on the whole text: a log without a GPU row costs one search)
ROW1_ANY = re.compile(r"(?m)^[^\S\n]*\|[^\S\n]*\d+[^\S\n]+[^\n]*\|[^\S\n]*[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:"
                      r"[0-9A-Fa-f]{2}\.\d")


def parse_smi_table(report: Report, facts: Facts) -> bool:
    # nothing is read or set without a header, a failure message, a GPU row or the MIG table
    if not (report.has("NVIDIA-SMI", "| MIG devices:", *SMI_FAILURES)
            or ("|" in report.text and ROW1_ANY.search(report.text))):
        return False
    found = False
    d = facts.driver
    current = None
    for text in report.texts:
        text = text.strip()
        m = HEADER.search(text)
        if m:
            found = True
            d.present, d.loaded = True, True
            fill(d, "version", m.group("driver"))
            if m.group("cuda") and m.group("cuda") != "N/A":
                fill(d, "cuda_version", m.group("cuda"))
            fill(d, "source", "report")
            continue
        if any(s in text for s in SMI_FAILURES):
            found = True
            fill(d, "nvidia_smi_error", text)
            d.present = True
            if "version mismatch" in text.lower():
                d.nvml_error = "lib_rm_mismatch"
                d.loaded = True
            elif "couldn't communicate" in text:
                d.nvml_error = d.nvml_error or "driver_not_loaded"
                d.loaded = False
            elif "No devices were found" in text:
                facts.gpus = facts.gpus or []
            continue
        m = ROW1.match(text)
        if m:
            found = True
            mode = m.group("mode")
            kw = {"pci_bus_id": m.group("bus")}
            if mode in ("WDDM", "TCC", "MCDM"):
                kw["driver_model"] = mode
                fill(facts.platform, "system", "Windows")
            else:
                kw["persistence_mode"] = mode == "On"
            name = m.group("name").rstrip(". ")
            current = add_gpu(facts, name, int(m.group("i")), **kw)
            continue
        if current is not None and ROW2.match(text):
            mm = MEM.search(text)
            if mm:
                fill(current, "memory_used_mb", int(mm.group("used")))
                fill(current, "memory_total_mb", int(mm.group("total")))
                current.memory_free_mb = current.memory_total_mb - current.memory_used_mb
            u = re.search(r"\|\s*(\d+)%\s+\S+\s*\|?$", text)
            if u:
                fill(current, "utilization_pct", int(u.group(1)))
            continue
        if current is not None:
            mm = ROW3_MIG.match(text)
            if mm:
                if mm.group("mig") != "N/A":
                    current.mig_mode = mm.group("mig") == "Enabled"
                current = None
                continue
        if text.startswith("| MIG devices:"):
            found = True
    return found


Q_GPU = re.compile(r"^GPU ([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)$")
Q_KV = re.compile(r"^(\s*)([A-Za-z][\w ./()-]*?)\s+: (.*)$")


def parse_smi_q(report: Report, facts: Facts) -> bool:
    if "NVSMI LOG" not in report.text:
        return False
    d = facts.driver
    d.present, d.loaded = True, True
    fill(d, "source", "report")
    gpu = None
    section = None
    idx = 0
    for text in report.texts:
        m = Q_GPU.match(text.strip())
        if m:
            gpu = add_gpu(facts, "", idx, pci_bus_id=m.group(1))
            idx += 1
            section = None
            continue
        m = Q_KV.match(text)
        if not m:
            if text.strip() and not text.strip().startswith("="):
                section = text.strip()
            continue
        key, val = m.group(2).strip(), m.group(3).strip()
        if gpu is None:
            if key == "Driver Version":
                fill(d, "version", val)
            elif key == "CUDA Version" and val != "Not Found":
                fill(d, "cuda_version", val)
            continue
        if key == "Product Name":
            gpu.name = val
        elif key == "GPU UUID":
            fill(gpu, "uuid", val)
        elif section == "MIG Mode" and key == "Current" and val in ("Enabled", "Disabled"):
            gpu.mig_mode = val == "Enabled"
        elif section == "Driver Model" and key == "Current" and val in ("WDDM", "TCC", "MCDM"):
            gpu.driver_model = val
            fill(facts.platform, "system", "Windows")
        elif key == "Persistence Mode" and val in ("Enabled", "Disabled"):
            gpu.persistence_mode = val == "Enabled"
        elif section == "FB Memory Usage" and key in ("Total", "Used", "Free"):
            mm = re.match(r"(\d+) MiB", val)
            if mm:
                setattr(gpu, f"memory_{key.lower()}_mb", int(mm.group(1)))
        elif key == "Compute Capability" or key == "CUDA Compute Capability":
            fill(gpu, "compute_capability", val)
    return True
