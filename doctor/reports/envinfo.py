"""`python -m torch.utils.collect_env`, the `- key: value` env blocks of transformers / accelerate / llamafactory /
diffusers / peft, and the start-up banners of Unsloth and ComfyUI.

Each parser takes the Report (the cleaned lines, text.py) and the Facts to fill, and returns True when it recognized
its report.
"""

from __future__ import annotations

import re

from tunedoc.doctor.facts import Facts
from tunedoc.doctor.reports.common import add_gpu, add_package, cuda_from_local, fill, known, kv, platform_from
from tunedoc.doctor.reports.text import Report

COLLECT_ENV_KEYS = ("pytorch version", "is debug build", "cuda used to build pytorch", "is cuda available",
                    "gpu models and configuration", "nvidia driver version", "rocm used to build pytorch")


def _bool(v: str) -> bool | None:
    v = v.strip().lower()
    return True if v in ("true", "yes") else False if v in ("false", "no") else None


# a word of each key that kv() can read it from ("`PyTorch` version" is "pytorch version" too)
COLLECT_ENV_WORDS = ("pytorch", "is debug build", "cuda used to build pytorch", "is cuda available",
                     "gpu models and configuration", "nvidia driver", "rocm used to build pytorch")


def is_collect_env(report: Report) -> bool:
    if ("Collecting environment information" not in report.text
            and sum(report.has(w) for w in COLLECT_ENV_WORDS) < 3):
        return False
    keys = set()
    for i in report.distinct:
        text = report.texts[i]
        if text.startswith("Collecting environment information"):
            return True
        p = kv(text)
        if p and p[0] in COLLECT_ENV_KEYS and not text.lstrip().startswith("-"):
            keys.add(p[0])
    return len(keys) >= 3


def parse_collect_env(report: Report, facts: Facts) -> bool:
    if not is_collect_env(report):
        return False
    t, p = facts.torch, facts.platform
    gpu_block = False
    for text in report.texts:
        if gpu_block:
            m = re.match(r"^\s*GPU (\d+): (.+?)(?: \(UUID: [^)]*\))?\s*$", text)
            if m:
                add_gpu(facts, m.group(2), int(m.group(1)))
                continue
            gpu_block = False
        pm = re.match(r"^\[(pip3?|conda)\] (\S+?)(?:==| +)(\S+)", text)
        if pm:
            add_package(facts, pm.group(2), pm.group(3))
            continue
        pair = kv(text)
        if not pair or text.lstrip().startswith("-"):
            continue
        key, val = pair
        if key == "pytorch version":
            v = known(val)
            t.installed = v is not None
            if v:
                t.version = v
                t.import_ok = True  # collect_env imported it
        elif key == "cuda used to build pytorch":
            v = known(val)
            if v:
                t.cuda = v
            elif t.version or val.strip().lower() in ("none", "could not collect"):
                t.cuda = ""  # torch.version.cuda is None: a CPU build (collect_env prints None/Could not collect)
        elif key == "rocm used to build pytorch":
            fill(t, "hip", known(val))
        elif key == "is cuda available":
            b = _bool(val)
            if b is not None:
                t.cuda_available = b
        elif key == "cuda runtime version":
            m = re.match(r"(\d+\.\d+)", val)
            if m:
                fill(facts.toolkit, "nvcc_version", m.group(1))
        elif key == "gpu models and configuration":
            v = known(val)
            if v:
                m = re.match(r"^GPU (\d+): (.+?)(?: \(UUID: [^)]*\))?$", v)
                if m:
                    add_gpu(facts, m.group(2), int(m.group(1)))
                elif not v.lower().startswith("gpu"):
                    add_gpu(facts, v, 0)
            gpu_block = True
        elif key == "nvidia driver version":
            v = known(val)
            if v and re.match(r"^\d+\.\d+", v):
                fill(facts.driver, "version", v)
                facts.driver.present = True
                fill(facts.driver, "source", "report")
        elif key == "os":
            v = known(val)
            if v:
                platform_from(v, facts)
                fill(p, "distro", re.sub(r"\s*\((x86_64|amd64|aarch64|arm64)\)\s*$", "", v))
        elif key == "python platform":
            platform_from(val, facts)
        elif key == "python version":
            m = re.match(r"(\d+\.\d+(?:\.\d+)?)", val)
            if m:
                fill(facts.python, "version", m.group(1))
    if not t.version:
        t.cuda = None if t.cuda == "" else t.cuda  # no torch at all: nothing to say about its build
    return True


ENV_BLOCK_HEAD = re.compile(r"^\s*[-*]\s+`?(transformers|llamafactory|accelerate|diffusers|peft|trl|sentence-transformers|"
                            r"huggingface_hub|vllm|axolotl|unsloth)`?\s+version\s*:", re.I)


def parse_env_block(report: Report, facts: Facts) -> bool:
    """`transformers env` (`transformers-cli env`), `accelerate env`, `llamafactory-cli env`, `diffusers-cli env`...
    Each line stands alone (the first value wins), so the distinct lines are enough."""
    if not any(ENV_BLOCK_HEAD.match(t) for t in report.lines_with("version")):
        return False
    t = facts.torch
    for i in report.distinct:
        text = report.texts[i]
        if not text.lstrip().startswith(("-", "*")):
            continue
        pair = kv(text)
        if not pair:
            continue
        key, val = pair
        if key == "platform":
            platform_from(val, facts)
        elif key == "python version":
            m = re.match(r"(\d+\.\d+(?:\.\d+)?)", val)
            if m:
                fill(facts.python, "version", m.group(1))
        elif key == "pytorch version":
            m = re.match(r"(\S+)\s*(?:\((\w+)\??\))?", val)
            if m and known(m.group(1)):
                add_package(facts, "torch", m.group(1))
                flag = (m.group(2) or "").lower()
                if flag in ("true", "gpu", "cuda"):
                    t.cuda_available = True
                    t.import_ok = True
                elif flag in ("false", "cpu", "na"):
                    fill(t, "cuda_available", False)
                    t.import_ok = True
                fill(t, "cuda", cuda_from_local(m.group(1)))
        elif key == "gpu type":
            v = known(val)
            if v:
                if facts.gpus is None or not any(g.name == v for g in facts.gpus):
                    add_gpu(facts, v, 0)
        elif key in ("gpu memory",):
            m = re.match(r"([\d.]+)\s*GB", val)
            if m and facts.gpus:
                fill(facts.gpus[0], "memory_total_mb", int(float(m.group(1)) * 1024))
        elif key.endswith(" version"):
            name = key[: -len(" version")].strip()
            v = known(val)
            if v and re.match(r"^v?\d", v) and " " not in name:
                add_package(facts, name, v.lstrip("v").split()[0])
    return True


UNSLOTH_TORCH = re.compile(r"Torch: (?P<torch>[\w.+]+)\. +CUDA: (?P<cc>\d+\.\d+)\. +CUDA Toolkit: (?P<cuda>\d+\.\d+)")
UNSLOTH_GPU = re.compile(r"(?:\\\\|\\)\s+/\|\s+(?:GPU: )?(?P<name>.+?)\.(?: Num GPUs = (?P<n>\d+)\.)? Max memory: "
                         r"(?P<mem>[\d.]+) GB\. Platform(?::| =) (?P<platform>\w+)")
# older banners (2024): "Pytorch: 2.3.0+cu121. CUDA = 6.1. CUDA Toolkit = 12.1."
UNSLOTH_TORCH_OLD = re.compile(r"Pytorch: (?P<torch>[\w.+]+)\. +CUDA = (?P<cc>\d+\.\d+)\. +CUDA Toolkit = (?P<cuda>\d+\.\d+)")
COMFY_DEVICE = re.compile(r"^Device: cuda:(?P<i>\d+) (?P<name>.+?) : (?:cudaMallocAsync|native|native_cuda)")
COMFY_VRAM = re.compile(r"^Total VRAM (?P<mb>\d+) MB")
TORCH_VERSION_LINE = re.compile(r"^\s*(?:pytorch|torch) version\s*[:=]\s*(?P<v>\d+\.\d+(?:\.\d+)?(?:\+\w+)?)\s*$", re.I)


BANNER_WORDS = ("Torch: ", "Pytorch: ", "Max memory: ", "Device: cuda:", "Total VRAM ")
BANNER_RX = re.compile("|".join(re.escape(w) for w in BANNER_WORDS))


def _banner_line(text: str) -> bool:
    return BANNER_RX.search(text) is not None or "torch version" in text.lower()


def parse_banners(report: Report, facts: Facts) -> list[str]:
    """Unsloth's start-up banner and ComfyUI's start-up log; returns the kinds found."""
    kinds = []
    if not report.has(*BANNER_WORDS, "torch version"):
        return kinds
    for ln in report.select(_banner_line, *BANNER_WORDS, "torch version"):
        m = UNSLOTH_TORCH.search(ln.text) or UNSLOTH_TORCH_OLD.search(ln.text)
        if m:
            add_package(facts, "torch", m.group("torch"))
            facts.torch.import_ok = True
            facts.torch.cuda_available = True
            fill(facts.torch, "cuda", known(m.group("cuda")) or cuda_from_local(m.group("torch")))
            if facts.gpus:
                fill(facts.gpus[0], "compute_capability", m.group("cc"))
            else:
                facts.torch.devices.append({"capability": m.group("cc")})
            kinds.append("unsloth")
        m = UNSLOTH_GPU.search(ln.text)
        if m:
            g = add_gpu(facts, m.group("name"), 0)
            fill(g, "memory_total_mb", int(float(m.group("mem")) * 1024))
            platform_from(m.group("platform"), facts)
            if facts.torch.devices and "name" not in facts.torch.devices[0]:
                fill(g, "compute_capability", facts.torch.devices.pop(0).get("capability"))
        m = COMFY_DEVICE.match(ln.text.strip())
        if m:
            add_gpu(facts, m.group("name"), int(m.group("i")))
            facts.torch.import_ok = True
            facts.torch.cuda_available = True
            kinds.append("comfyui")
        m = COMFY_VRAM.match(ln.text.strip())
        if m and facts.gpus:
            fill(facts.gpus[0], "memory_total_mb", int(m.group("mb")))
        m = TORCH_VERSION_LINE.match(ln.text)
        if m:
            add_package(facts, "torch", m.group("v"))
            fill(facts.torch, "cuda", cuda_from_local(m.group("v")))
    return sorted(set(kinds), key=kinds.index)
