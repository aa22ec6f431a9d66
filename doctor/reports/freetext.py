"""Facts from what people really write: hand-filled issue templates, prose, one-liner prints, pip/conda logs.

    n = parse_freetext(lines, facts, source="issue.txt")   # facts filled, one quoted line per fact; n = how many

Runs after the format parsers, so a fact a tool printed (collect_env, nvidia-smi) wins; a different value from
prose is kept as a conflict note (`facts.conflicts`). Every fact filled here keeps the line it came from in
`facts.quoted` ("torch.version" -> "issue.txt:12: PyTorch Version: 2.2.0+cu121"), shown as evidence with `-v`.
Facts from prose count as reported (`origin` stays "report"), never as probed.

What it reads (the patterns are tables below):
- key/value lines in any casing, spacing and markdown: `- **PyTorch Version**: 2.2.0+cu121`, `| GPU | RTX 4090 |`,
  `CUDA Version: 12.8 (Driver 570.181)`, `Compute Capability: 12.0`, `torch.version.cuda: 12.8`;
- versions and GPU names in prose ("Ubuntu 16.04, NVIDIA driver 367.57, GeForce GTX 1080");
- pip and conda logs and wheel names (`torch-2.8.0.dev20250416%2Bcu128-cp312-cp312-win_amd64.whl`,
  `Successfully installed torch-2.5.1`, `Requirement already satisfied: torch in ... (2.5.1)`);
- interactive one-liners (`>>> torch.__version__` then `'2.5.1+cu121'`, `get_device_capability()` then `(8, 6)`);
- OS, WSL and container hints from prompts and paths (`C:\\Users\\me>`, `/mnt/c/`, `root@3f2a9c1b7d4e:/#`,
  `docker compose up`, Kubernetes).
"""

from __future__ import annotations

import re

from tunedoc.doctor.facts import Facts
from tunedoc.doctor.reports.common import add_gpu, add_package, cuda_from_local, fill, platform_from
from tunedoc.doctor.reports.text import Line, Report, shape_of


def _words_rx(words) -> re.Pattern:
    """One search for any of these words (bytes): what `any(w in s for w in words)` says, in one call."""
    return re.compile(b"|".join(re.escape(w) for w in words))


TORCH_V = r"(\d+\.\d+(?:\.\d+)?(?:(?:a|b|rc|\.dev)\d+)?(?:\+(?:cu\d+|cpu|rocm[\d.]+|xpu))?)"
DRIVER_V = r"(\d{3}\.\d{1,3}(?:\.\d{1,3})?)"
CUDA_V = r"(\d{1,2}\.\d)"
GPU_NAME = re.compile(
    r"\b((?:NVIDIA\s+)?(?:GeForce\s+)?(?:RTX|GTX|TITAN)\s*(?:A?\d{3,4}|PRO\s+\d{4}|Xp?|V|RTX)(?:\s*(?:Ti|SUPER|D|Laptop"
    r"(?:\s+GPU)?|Max-Q|Blackwell))*"
    r"|(?:NVIDIA\s+)?(?:Tesla\s+)?(?:[AHLBV]\d{2,3}|T4|P100|P40|K80|GH200|GB10)(?:[- ](?:SXM\d?|PCIe|NVL))?"
    r"(?:[- ]\d+\s?GB)?|(?:NVIDIA\s+)?(?:Quadro\s+)?RTX\s+A\d{4}|(?:NVIDIA\s+)?Quadro\s+\w+)", re.I)
STRONG_GPU = re.compile(r"\b(?:NVIDIA\s+[A-Z]+\d*|[ABHL]\d{2,3}S?|RTX|GTX|TITAN|Tesla|Quadro|GeForce|[AH]100|[AHL]40S?|L4|T4|V100|P100|GH200|GB10)\b",
                        re.I)

# key (normalised: lowercase, markdown and punctuation removed) -> fact it names
KEYS: list[tuple[re.Pattern, str]] = [(re.compile(k), v) for k, v in [
    (r"^(?:cuda (?:version )?\(?torch\)?|torch\.?version\.?cuda|torch cuda(?: version)?|pytorch cuda(?: version)?|"
     r"cuda used to build pytorch|cuda \(pytorch\)|cuda runtime(?: version)?)$", "torch.cuda"),
    (r"^(?:torch|pytorch)(?: \w+)?(?: version)?$|^torch\.?__version__$|^pytorch version \(.*\)$", "torch.version"),
    (r"^(?:nvidia )?(?:gpu |cuda )?driver(?: version)?$|^nvidia$|^display driver$", "driver.version"),
    (r"^cuda(?: toolkit| driver)?(?: version)?$|^cuda version \(driver\)$|^nvidia-smi cuda$", "cuda"),
    (r"^(?:gpus?|gpu (?:name|model|type|info)|graphics(?: card)?|video card|device(?: name)?|gpu\(s\)|"
     r"torch\.?cuda\.?get_device_name.*|card|hardware|gpu [\d, ]+)$", "gpu"),
    (r"^(?:gpu [\d, ]+ )?(?:compute capability|cuda capability|capability|torch\.?cuda\.?get_device_capability.*|sm)$", "cc"),
    (r"^(?:os|operating system|platform|system|os version|os platform and distribution|distro|environment)$", "os"),
    (r"^python(?: version)?$", "python"),
    (r"^(?:cuda available|torch\.?cuda\.?is_available.*|is cuda available|gpu available)$", "cuda_available"),
    (r"^(bitsandbytes|transformers|accelerate|peft|trl|xformers|flash[-_ ]attn|torchvision|torchaudio|triton|"
     r"unsloth|vllm|deepspeed)(?: version)?$", "package"),
]]

PROSE: list[tuple[re.Pattern, str]] = [(re.compile(p, re.I), k) for p, k in [
    (r"\b(?:py)?torch\s*(?:version\s*)?(?:==|=|:|is|v)?\s*" + TORCH_V + r"(?![\w.])", "torch.version"),
    (r"\bdriver\s*(?:version\s*)?(?:is\s*|:\s*|=\s*|v)?" + DRIVER_V + r"\b", "driver.version"),
    (r"\b" + DRIVER_V + r"\s+(?:nvidia\s+)?driver\b", "driver.version"),
    (r"\b(?:Ubuntu|Debian|CentOS|Rocky|Fedora|Arch Linux|Windows\s*(?:10|11|Server)|WSL\s*2?|macOS)(?:\b|(?=\d))"
     r"[\s\d.]*", "os"),
    (r"\b(?:on|in|under|using|with) (?:native |my )?windows\b", "os"),
    # "win10下", "window 10" (typo), "windows下/系统/上" (a Chinese sentence: under/system/on Windows)
    (r"(?<![a-z])win(?:dows?)?\s*(?:7|8|10|11)(?!\d)|(?<![a-z])windows\s*(?:下|上|系统|系統|平台|环境|電腦|电脑)", "os"),
    # the Python REPL banner: "[GCC 7.3.0] :: Anaconda, Inc. on linux", "[MSC v.1938 64 bit (AMD64)] on win32"
    (r"\]\s*(?:::[^\]]*?)?\s+on (?:linux|win32)\s*$", "os"),
    # a PyTorch described in prose with the CUDA it was built for: "PyTorch (nightly build with CUDA 12.1)"
    (r"\b(?:py)?torch\b[^\n.;]{0,40}?\b(?:with|built (?:with|for)|for) CUDA\s*(\d{1,2}\.\d)\b", "torch.cuda"),
    # the user saying CUDA does not work for them: "cuda is not available", "cuda is no avaible" (typo)
    (r"(?<![a-z.])cuda\s+(?:is\s+)?(?:not|no|un)\s*av\w*ble\b|(?<![a-z.])cuda\s*(?:不可用|用不了)", "cuda_available"),
    (r"\bpython\s*(?:version\s*)?(?:==|:|is)?\s*(3\.\d{1,2}(?:\.\d+)?)\b", "python"),
]]

PIP_OK = re.compile(r"^\s*Successfully installed (.+)$")
PIP_HAVE = re.compile(r"Requirement already satisfied: ([\w.-]+)(?:[<>=!~][^\s]*)? in (\S+)(?: \(([^)]+)\))?")
WHEEL = re.compile(r"\b(torch|torchvision|torchaudio|bitsandbytes|xformers|flash_attn|triton)-(\d[\w.]*?(?:(?:%2B|\+)"
                   r"[\w.]+)?)-(cp3\d+|py3)-[\w.]+?-(win_amd64|manylinux\w*|linux_x86_64|macosx\w*|any)\.whl", re.I)
COLLECT = re.compile(r"^\s*Collecting (torch|bitsandbytes)==(\d[\w.+]*)")
CONDA_PKG = re.compile(r"^\s+(pytorch|pytorch-cuda|cudatoolkit)\s*[-=]?\s*(\d[\w.]*)-([\w.]+)\s+\S+")
# a `conda list` / `pip list` row pasted without its header
PKG_ROW = re.compile(r"^\s*(?:[-*]\s+)?(torch|torchvision|torchaudio|bitsandbytes|xformers|flash[-_]attn|triton|deepspeed|"
                     r"transformers|accelerate|peft|trl|vllm)\s+(\d+\.\d+[\w.+]*)(?:\s+\S+){0,3}\s*$", re.I)
# `pip install torch==2.1.2 torchvision --index-url https://download.pytorch.org/whl/cu121` (what was installed)
PIP_CMD = re.compile(r"\bpip3?(?:\.exe)?\s+install\s+(.+)$", re.I)
PIN = re.compile(r"^([A-Za-z][\w.-]*?)(?:\[[\w,]+\])?={2,3}(\d[\w.+]*)$")
INDEX_VARIANT = re.compile(r"download\.pytorch\.org/whl/(?:nightly/)?(cu\d{2,3}|cpu)\b")
# /proc/driver/nvidia/version: "NVRM version: NVIDIA UNIX x86_64 Kernel Module  396.54  Tue Aug 14 ..."
NVRM = re.compile(r"NVRM version: NVIDIA UNIX [\w-]+ Kernel Module\s+" + DRIVER_V + r"\b", re.I)
# a driver version on a line of its own, as people answer "which driver?": "410.48,,"
BARE_DRIVER = re.compile(r"^\s*([2-6]\d\d\.\d{2,3}(?:\.\d{2,3})?)\s*[,.;!?]*\s*$")
# the environment banner of Ultralytics/YOLOv5 (select_device):
# "Python-3.11.5 torch-2.1.2+cu121 CUDA:0 (NVIDIA GeForce RTX 3060, 12287MiB)" or "... torch-2.0.1 CPU"
YOLO_BANNER = re.compile(r"\bPython-(3\.\d{1,2}\.\d+) torch-" + TORCH_V + r" (?:CUDA:\d+ \(([^,()]+), (\d+)MiB\)|CPU\b)")
REPL = re.compile(r"torch\.__version__|torch\.version\.cuda|get_device_name|get_device_capability|cuda\.is_available")
WIN_PROMPT = re.compile(r"^\s*(?:\(\S+\)\s*)?(?:PS\s+)?[A-Z]:\\[^>]*>|\b[A-Z]:\\Users\\", re.I)
WSL_HINT = re.compile(r"/mnt/[c-z]/|\bWSL ?2?\b|microsoft-standard", re.I)
CONTAINER_HINT = re.compile(r"^\s*root@[0-9a-f]{12}:|\bdocker(?:-compose| compose| run| exec)\b|\bkubectl\b|"
                            r"\bkubernetes\b|/\.dockerenv|\bnvidia-container|\bDockerfile\b|\bcontainer\b.*\bgpus?\b",
                            re.I)
MD = re.compile(r"[*_`]+")


def _key(raw: str) -> str:
    k = MD.sub("", raw).strip().strip(":").strip().lower()
    k = re.sub(r"^[-+•>#\d.)\s]+", "", k)
    k = re.sub(r"\(\)|\[\d\]|\(0\)", "", k)
    return re.sub(r"\s+", " ", k).strip()


def _split(text: str) -> tuple[str, str] | None:
    """'- **PyTorch Version**: 2.2' / '| GPU | RTX 4090 |' / 'torch.version.cuda = 12.8' -> (key, value)."""
    t = text.strip()
    if t.startswith("|") and t.count("|") >= 3:
        cells = [c.strip() for c in t.strip("|").split("|")]
        if len(cells) >= 2 and cells[0] and not set(cells[0]) <= set("-: "):
            return _key(cells[0]), MD.sub("", cells[1]).strip()
        return None
    t = re.sub(r"^\s*(?:[-*+•]|\d+[.)])\s+", "", t)
    m = re.match(r"^(?:>>>\s*|print\()?\s*([^:=]{1,60}?)\s*\)?\s*(?::|=|：| - |\t)\s*(.+)$", MD.sub("", t))
    if not m:
        return None
    return _key(m.group(1)), m.group(2).strip().strip("`'\"").strip()


class _Out:
    def __init__(self, facts: Facts, source: str):
        self.facts, self.source, self.count = facts, source, 0

    def set(self, path: str, obj, attr: str, value, line: Line) -> None:
        if value in (None, ""):
            return
        old = getattr(obj, attr)
        where = f"{self.source}:{line.no}: {line.text.strip()[:200]}"
        if old in (None, "") or (isinstance(old, str) and isinstance(value, str) and len(value) > len(old)
                                 and value.startswith(old)):  # "2.8.0" from a path, "2.8.0.dev2025+cu128" here
            setattr(obj, attr, value)
            self.facts.quoted.setdefault(path, where)
            self.count += 1
        elif str(old) == str(value):  # another part of the report said the same: quote it if none did
            self.facts.quoted.setdefault(path, where)
            self.count += 1
        elif str(old).split("+")[0] != str(value).split("+")[0] and path not in ("platform.system",):
            note = f"{path}: {old} elsewhere in the report, but {value} at {where}"
            if note not in self.facts.conflicts and len(self.facts.conflicts) < 10:
                self.facts.conflicts.append(note)


def _gpu(out: _Out, name: str, line: Line) -> None:
    from tunedoc.doctor import knowledge as K

    name = re.sub(r"\s*\(?\d+\s*G[Bi]B?\)?\s*$", "", name.strip().strip("'\"")).strip()
    if not name or not STRONG_GPU.search(name):
        return
    facts = out.facts
    if facts.gpus:
        if not any(K.lookup_gpu(g.name or "") == K.lookup_gpu(name) for g in facts.gpus):
            note = f"gpu: {facts.gpus[0].name} elsewhere in the report, but {name} at {out.source}:{line.no}"
            if len(facts.gpus) == 1 and note not in facts.conflicts and len(facts.conflicts) < 10:
                facts.conflicts.append(note)
        return
    if not name.lower().startswith(("nvidia", "tesla", "quadro")) and K.lookup_gpu(name):
        name = "NVIDIA " + ("GeForce " + name if re.match(r"(?i)(rtx|gtx)\s*\d", name) else name)
    add_gpu(facts, name, 0)
    facts.quoted.setdefault("gpu", f"{out.source}:{line.no}: {line.text.strip()[:200]}")
    out.count += 1


def _cc(value: str) -> str | None:
    m = re.search(r"\(?\s*(\d{1,2})\s*[,.]\s*(\d)\s*\)?", value)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def _kv(out: _Out, key: str, value: str, line: Line) -> bool:
    f = out.facts
    for rx, what in KEYS:
        m = rx.match(key)
        if not m:
            continue
        low = value.lower()
        if what == "torch.version":
            v = re.search(TORCH_V, value)
            if v:
                out.set("torch.version", f.torch, "version", v.group(1), line)
                f.torch.installed = True
        elif what == "torch.cuda":
            v = re.search(CUDA_V, value)
            if v:
                out.set("torch.cuda", f.torch, "cuda", v.group(1), line)
            elif low in ("none", "n/a") and f.torch.cuda is None:
                out.set("torch.cuda", f.torch, "cuda", "", line)
        elif what == "driver.version":
            v = re.search(DRIVER_V, value)
            if v:
                out.set("driver.version", f.driver, "version", v.group(1), line)
                f.driver.present = True
            c = re.search(r"cuda(?: version)?\s*:?\s*" + CUDA_V, low)
            if c:
                out.set("driver.cuda_version", f.driver, "cuda_version", c.group(1), line)
        elif what == "cuda":
            d = re.search(r"driver\s*:?\s*(?:version\s*)?" + DRIVER_V, low)
            v = re.search(r"^\s*" + CUDA_V, value)
            if d:
                out.set("driver.version", f.driver, "version", d.group(1), line)
                f.driver.present = True
                if v:
                    out.set("driver.cuda_version", f.driver, "cuda_version", v.group(1), line)
            elif v and "nvcc" in low:
                out.set("toolkit.nvcc_version", f.toolkit, "nvcc_version", v.group(1), line)
            elif v:  # a bare "CUDA Version" in a template: kept as quoted, not guessed into a layer
                f.quoted.setdefault("cuda", f"{out.source}:{line.no}: {line.text.strip()[:200]}")
        elif what == "gpu":
            _gpu(out, re.split(r"[,|]", value)[0], line)
            d = re.search(r"\bdriver\s*:?\s*" + DRIVER_V, value, re.I)
            if d:
                out.set("driver.version", f.driver, "version", d.group(1), line)
                f.driver.present = True
        elif what == "cc":
            cc = _cc(value)
            if cc and f.gpus and len(f.gpus) == 1:
                out.set("gpu.compute_capability", f.gpus[0], "compute_capability", cc, line)
            elif cc:
                f.torch.devices.append({"capability": cc})
                f.quoted.setdefault("gpu.compute_capability", f"{out.source}:{line.no}: {line.text.strip()[:200]}")
        elif what == "os":
            before = f.platform.system
            platform_from(value, f)
            if f.platform.system and not before:
                f.quoted.setdefault("platform.system", f"{out.source}:{line.no}: {line.text.strip()[:200]}")
                out.count += 1
            d = re.search(r"(Ubuntu|Debian|CentOS|Rocky|Fedora)[\s\w.]*", value, re.I)
            if d:
                fill(f.platform, "distro", d.group(0).strip())
        elif what == "python":
            v = re.search(r"\b(3\.\d{1,2}(?:\.\d+)?)\b", value)
            if v:
                out.set("python.version", f.python, "version", v.group(1), line)
        elif what == "cuda_available":
            if low.startswith("true") or low == "yes":
                out.set("torch.cuda_available", f.torch, "cuda_available", True, line)
            elif low.startswith("false") or low == "no":
                out.set("torch.cuda_available", f.torch, "cuda_available", False, line)
        elif what == "package":
            v = re.search(r"\b(\d+\.\d+(?:\.\d+)?(?:\.post\d+|\.dev\d+)?(?:\+[\w.]+)?)\b", value)
            if v:
                name = m.group(1).replace(" ", "-").replace("_", "-")
                if name not in f.python.packages:
                    add_package(f, name, v.group(1))
                    f.quoted.setdefault(f"package.{name}", f"{out.source}:{line.no}: {line.text.strip()[:200]}")
                    out.count += 1
        return True
    return False


def _pip(out: _Out, ln: Line) -> None:
    f, t = out.facts, ln.text
    m = PIP_OK.match(t) if "Successfully installed" in t else None
    if m:
        for tok in m.group(1).split():
            name, _, ver = tok.rpartition("-")
            if name and re.match(r"\d", ver):
                if name.lower() == "torch":
                    out.set("torch.version", f.torch, "version", ver, ln)
                elif name.replace("_", "-").lower() not in f.python.packages:
                    add_package(f, name, ver)
        return
    m = PIP_HAVE.search(t) if "Requirement already satisfied: " in t else None
    if m:
        name, where, ver = m.group(1), m.group(2), m.group(3)
        if ver and name.lower() == "torch":
            out.set("torch.version", f.torch, "version", ver.split(")")[0], ln)
        elif ver and name.replace("_", "-").lower() not in f.python.packages:
            add_package(f, name, ver)
        py = re.search(r"[Pp]ython(3)\.?(\d{1,2})[/\\]", where)
        if py:
            out.set("python.version", f.python, "version", f"{py.group(1)}.{py.group(2)}", ln)
        return
    for m in (WHEEL.finditer(t) if ".whl" in t.lower() else ()):
        name, ver, tag, plat = m.group(1).lower(), m.group(2).replace("%2B", "+").replace("%2b", "+"), m.group(3), m.group(4)
        if name == "torch":
            out.set("torch.version", f.torch, "version", ver, ln)
        elif name.replace("_", "-") not in f.python.packages:
            add_package(f, name, ver)
        if tag.startswith("cp3"):
            out.set("python.version", f.python, "version", f"3.{tag[3:]}", ln)
        if plat == "win_amd64":
            out.set("platform.system", f.platform, "system", "Windows", ln)
        elif plat.startswith(("manylinux", "linux")):
            out.set("platform.system", f.platform, "system", "Linux", ln)
    m = ((COLLECT.match(t) if "Collecting " in t else None)
         or (CONDA_PKG.match(t) if "pytorch" in t or "cudatoolkit" in t else None))
    if m and m.group(1) in ("torch", "pytorch"):
        out.set("torch.version", f.torch, "version", m.group(2), ln)
    elif m and m.group(1) == "pytorch-cuda":
        out.set("torch.cuda", f.torch, "cuda", m.group(2), ln)


def _pip_cmd(out: _Out, ln: Line) -> None:
    """A pasted `pip install` command: pinned versions (torch===1.3.0, transformers==4.34.0) and, for torch, the
    CUDA of the download.pytorch.org index it names (…/whl/cu121 -> 12.1, …/whl/cpu -> a CPU build)."""
    m = PIP_CMD.search(ln.text)
    if not m:
        return
    f = out.facts
    toks = [x.strip("'\"`") for x in m.group(1).split()]
    names = {re.split(r"[=<>!~\[]", x)[0].lower() for x in toks if not x.startswith("-")}
    for tok in toks:
        p = PIN.match(tok)
        if not p:
            continue
        name, ver = p.group(1).lower().replace("_", "-"), p.group(2)
        if name == "torch":
            out.set("torch.version", f.torch, "version", ver, ln)
            f.torch.installed = True
        elif name not in f.python.packages:
            add_package(f, name, ver)
            f.quoted.setdefault(f"package.{name}", f"{out.source}:{ln.no}: {ln.text.strip()[:200]}")
    v = INDEX_VARIANT.search(m.group(1))
    if v and "torch" in names:
        f.torch.installed = True
        if v.group(1) == "cpu":
            if f.torch.cuda is None:  # the CPU index: a CPU build ("" is "no CUDA", which set() skips)
                f.torch.cuda = ""
                f.quoted.setdefault("torch.cuda", f"{out.source}:{ln.no}: {ln.text.strip()[:200]}")
                out.count += 1
        else:
            d = v.group(1)[2:]
            out.set("torch.cuda", f.torch, "cuda", f"{d[:-1]}.{d[-1]}", ln)


def _repl(out: _Out, report: Report, i: int) -> None:
    """`>>> torch.__version__` (or print(...)) followed by its value on the next non-empty line."""
    text = report.texts[i]
    q = REPL.search(text)
    nxt = next((report.line(j) for j in range(i + 1, min(i + 3, len(report.texts))) if report.texts[j].strip()), None)
    if not q or nxt is None or re.search(r"[:=]", text.split(q.group(0))[-1]):
        return
    v = nxt.text.strip().strip("'\"")
    what = q.group(0)
    if what == "torch.__version__" and re.fullmatch(TORCH_V, v):
        out.set("torch.version", out.facts.torch, "version", v, nxt)
    elif what == "torch.version.cuda" and re.fullmatch(CUDA_V, v):
        out.set("torch.cuda", out.facts.torch, "cuda", v, nxt)
    elif what == "torch.version.cuda" and v == "None":
        out.set("torch.cuda", out.facts.torch, "cuda", "", nxt)
    elif what == "get_device_name":
        _gpu(out, v, nxt)
    elif what == "get_device_capability" and _cc(v) and re.fullmatch(r"\(\s*\d+\s*,\s*\d+\s*\)", v):
        if out.facts.gpus and len(out.facts.gpus) == 1:
            out.set("gpu.compute_capability", out.facts.gpus[0], "compute_capability", _cc(v), nxt)
    elif what == "cuda.is_available" and v in ("True", "False"):
        out.set("torch.cuda_available", out.facts.torch, "cuda_available", v == "True", nxt)


# the word a prose pattern needs (lowercased line), and the fact that makes it unneeded once known
PROSE_GATES = {"torch.version": ("torch",), "driver.version": ("driver",), "python": ("python",),
               "os": ("ubuntu", "debian", "centos", "rocky", "fedora", "arch linux", "win", "wsl", "macos", " on "),
               "torch.cuda": ("torch",), "cuda_available": ("cuda",)}


# the PROSE patterns with no literal digit: one that does not match a line's shape (lowercased, digits as 0) does not
# match the line (all are case-insensitive); the others ("Windows 10", "python 3.") are always tried
SHAPE_SAFE = ("torch.version", "driver.version", "torch.cuda", "cuda_available")


def _prose_plan(shape: bytes, s: str | None = None) -> tuple[tuple[int, ...], int]:
    """For a line shape (and `s`, it as text): which PROSE patterns can match it (their gate words are there and,
    where that is a safe test, the pattern matches the shape), and whether a GPU name can be there (2: a GPU word
    is in the line; 1: maybe, a word with a digit is in the shape; 0: none)."""
    if s is None:
        s = shape.decode("utf-8", "surrogatepass")
    plan = tuple(k for k, (rx, what) in enumerate(PROSE)
                 if _GATES[k].search(shape) and (what not in SHAPE_SAFE or rx.search(s)))
    if GPU_PLAIN.search(shape):
        return plan, 2
    return plan, int(GPU_SHAPES.search(shape) is not None)


def _prose(out: _Out, ln: Line, plan: tuple[tuple[int, ...], int] | None = None) -> None:
    f, t = out.facts, ln.text
    low = t.lower()
    known = {"torch.version": f.torch.version, "os": f.platform.system, "python": f.python.version,
             "torch.cuda": f.torch.cuda, "cuda_available": f.torch.cuda_available is not None}
    ks, gpu_words = plan if plan is not None else (range(len(PROSE)), 1)
    for k in ks:
        rx, what = PROSE[k]
        if known.get(what) or not any(w in low for w in PROSE_GATES[what]):
            continue
        for m in rx.finditer(t):
            if what == "torch.version" and f.torch.version is None:
                if re.search(r"torch(?:vision|audio)", t[max(0, m.start() - 1):m.end()], re.I):
                    continue
                out.set("torch.version", f.torch, "version", m.group(1), ln)
                f.torch.installed = True
            elif what == "driver.version":
                out.set("driver.version", f.driver, "version", m.group(1), ln)
                f.driver.present = True
            elif what == "os" and f.platform.system is None:
                said = m.group(0).lower()
                platform_from("windows" if said.startswith("win") or "win32" in said
                              else "linux" if said.endswith("linux") else m.group(0), f)
                if f.platform.system:
                    f.quoted.setdefault("platform.system", f"{out.source}:{ln.no}: {t.strip()[:200]}")
                    out.count += 1
            elif what == "python":
                out.set("python.version", f.python, "version", m.group(1), ln)
            elif what == "torch.cuda":
                out.set("torch.cuda", f.torch, "cuda", m.group(1), ln)
                f.torch.installed = True
            elif what == "cuda_available":  # the user's complaint: quoted apart from a tool's "available: False"
                out.set("torch.cuda_available", f.torch, "cuda_available", False, ln)
                f.quoted.setdefault("said.cuda_unavailable", f"{out.source}:{ln.no}: {t.strip()[:200]}")
    if not f.gpus and gpu_words and (gpu_words == 2 or GPU_DIGITS.search(low)):
        m = GPU_NAME.search(t)
        if m and STRONG_GPU.search(m.group(0)):
            _gpu(out, m.group(0), ln)


GPU_WORDS = ("rtx", "gtx", "titan", "tesla", "quadro", "geforce", "nvidia", "a100", "h100", "h200", "h20", "l40",
             "v100", "p100", "p40", "k80", "t4", "a10", "l4", "gh200", "gb10", "b200", "a40", "a30", "a800", "h800")
GPU_PLAIN = _words_rx(w.encode() for w in GPU_WORDS if not any(c.isdigit() for c in w))
GPU_SHAPES = _words_rx(shape_of(w) for w in GPU_WORDS)
GPU_DIGITS = re.compile("|".join(w for w in GPU_WORDS if any(c.isdigit() for c in w)))  # the others: see GPU_PLAIN
_GATES = [_words_rx(w.encode() for w in PROSE_GATES[what]) for _, what in PROSE]  # lowercase, no digits


def _hints(out: _Out, ln: Line) -> None:
    f, t = out.facts, ln.text
    if f.platform.system is None and WIN_PROMPT.search(t):
        out.set("platform.system", f.platform, "system", "Windows", ln)
    if f.platform.is_wsl is None and WSL_HINT.search(t):
        f.platform.is_wsl = True
        fill(f.platform, "system", "Linux")
        f.quoted.setdefault("platform.is_wsl", f"{out.source}:{ln.no}: {t.strip()[:200]}")
        out.count += 1
    if f.platform.in_container is None and CONTAINER_HINT.search(t):
        f.platform.in_container = True
        low = t.lower()
        fill(f.platform, "container_kind", "kubernetes" if "kube" in low else "docker")
        f.quoted.setdefault("platform.in_container", f"{out.source}:{ln.no}: {t.strip()[:200]}")
        out.count += 1


# cheap substring prefilters (lowercased line): a long log's lines mostly hold none of these
HINT_WORDS = (":\\", "/mnt/", "wsl", "microsoft", "root@", "docker", "kube", "container")
PROSE_WORDS = ("torch", "driver", "win", "cuda", " on linux", "ubuntu", "debian", "centos", "rocky", "fedora", "arch linux", "windows", "wsl",
               "macos", "python", "rtx", "gtx", "titan", "tesla", "quadro", "geforce", "a100", "h100", "h200", "l40",
               "v100", "p100", "p40", "k80", "t4", "a10", "l4", "gh200", "gb10", "b200", "a40", "a30")


# what each step of parse_freetext needs in a line (lowercased; a digit stands for any digit): decided once per shape
_HINT, _PIP, _NVRM, _REPL, _YOLO, _PKG, _KV, _PROSE, _PROSE_SURE = (1 << k for k in range(9))
SHAPE_WORDS = [(_HINT, HINT_WORDS), (_PIP, ("install", "requirement", ".whl", "collecting", "pytorch")),
               (_NVRM, ("nvrm",)),
               (_REPL, ("torch.__version__", "torch.version.cuda", "get_device_name", "get_device_capability",
                        "cuda.is_available")),
               (_YOLO, ("torch-",)),
               (_PKG, ("torch", "bitsandbytes", "xformers", "flash", "triton", "deepspeed", "transformers",
                       "accelerate", "peft", "trl", "vllm")),
               (_PROSE, PROSE_WORDS)]
SHAPE_RX = [(bit, _words_rx(shape_of(w) for w in words)) for bit, words in SHAPE_WORDS]
PROSE_PLAIN_RX = _words_rx(w.encode() for w in PROSE_WORDS if not any(c.isdigit() for c in w))
PROSE_DIGITS = re.compile("|".join(w for w in PROSE_WORDS if any(c.isdigit() for c in w)))
# a word every key of KEYS holds ("os", "gpu", "python"...): a key/value line whose key holds none is not read
KEY_WORDS = tuple(w.encode() for w in (
    "cuda", "torch", "driver", "nvidia", "gpu", "graphics", "card", "device", "hardware", "capability", "sm", "os",
    "system", "platform", "distro", "environment", "python", "bitsandbytes", "transformers", "accelerate", "peft",
    "trl", "xformers", "flash", "triton", "unsloth", "vllm", "deepspeed"))
KEY_WORDS_RX = _words_rx(KEY_WORDS)
_KEY_GONE = b"*_`()[]0"  # markdown, "()", "[0]" and "(0)" that _key() removes (and any digit): letters can meet


def _shape_steps(shape: bytes) -> tuple[int, tuple | None]:
    """The steps of parse_freetext that may find something in a line of this shape (a necessary test), and the
    prose plan (_prose_plan) when prose may."""
    bits = 0
    for bit, rx in SHAPE_RX:
        if rx.search(shape):
            bits |= bit
    s = shape.decode("utf-8", "surrogatepass")
    plan = None
    # patterns with no literal digit or capital (REPL), or that ignore case (PKG_ROW): no match on the shape, none
    # on the line
    if bits & _REPL and not REPL.search(s):
        bits &= ~_REPL
    if bits & _PKG and not PKG_ROW.match(s):
        bits &= ~_PKG
    if bits & _PROSE:
        plan = _prose_plan(shape, s)
        if not plan[0] and not plan[1]:  # no PROSE pattern and no GPU word can be there
            bits &= ~_PROSE
        elif PROSE_PLAIN_RX.search(shape):  # a word without digits: in the line itself
            bits |= _PROSE_SURE
    if any(c in shape for c in (b":", b"=", b"|", b"\t", b" - ", "：".encode())):
        # the key is before the first ':' or '=' (a table row's: anywhere in the line)
        key = shape if b"|" in shape else shape.split(b":", 1)[0].split(b"=", 1)[0]
        key = key.translate(None, _KEY_GONE)
        if KEY_WORDS_RX.search(key):
            bits |= _KV
    return bits, plan


def parse_freetext(report: Report, facts: Facts, source: str = "<text>") -> int:
    """Fill `facts` from free text; returns how many facts it filled (0: nothing found). Linear: each distinct line
    is read once, and the regexes run only on lines holding one of their words (decided once per line shape)."""
    out = _Out(facts, source)
    steps = {shape: _shape_steps(shape) for shape in dict.fromkeys(report.shapes)}
    texts, nos = report.texts, report.nos
    # the lines a step may read (a short line may be a bare driver version): most of a long log's are skipped here
    todo = [(i, shape) for i, shape in zip(report.distinct, report.shapes) if steps[shape][0] or len(texts[i]) < 24]
    for i, shape in todo:
        t = texts[i]
        if len(t) < 3 or len(t) > 2000:
            continue
        bits, plan = steps[shape]
        ln = Line(nos[i], t)
        low = t.lower()
        if bits & _HINT and any(w in low for w in HINT_WORDS):
            _hints(out, ln)
        if bits & _PIP and ("install" in t or "Requirement" in t or ".whl" in t or "Collecting" in t or "pytorch" in t):
            _pip(out, ln)
            if "install" in low:
                _pip_cmd(out, ln)
        if bits & _NVRM and "NVRM" in t:
            m = NVRM.search(t)
            if m:
                out.set("driver.version", facts.driver, "version", m.group(1), ln)
                facts.driver.present = True
        m = BARE_DRIVER.match(t) if facts.driver.version is None and len(t) < 24 else None
        if m:
            out.set("driver.version", facts.driver, "version", m.group(1), ln)
            facts.driver.present = True
            continue
        if bits & _REPL and REPL.search(t):
            _repl(out, report, i)
        if bits & _YOLO and "torch-" in t:
            m = YOLO_BANNER.search(t)
            if m:
                out.set("python.version", facts.python, "version", m.group(1), ln)
                out.set("torch.version", facts.torch, "version", m.group(2), ln)
                facts.torch.installed = True
                if m.group(3):
                    _gpu(out, m.group(3), ln)
                    if facts.gpus and len(facts.gpus) == 1 and facts.gpus[0].memory_total_mb is None:
                        facts.gpus[0].memory_total_mb = int(m.group(4))
                continue
        m = PKG_ROW.match(t) if bits & _PKG else None
        if m:
            name = m.group(1).lower().replace("_", "-")
            if name == "torch":
                out.set("torch.version", facts.torch, "version", m.group(2), ln)
            if name not in facts.python.packages:
                add_package(facts, name, m.group(2))
                facts.quoted.setdefault(f"package.{name}", f"{source}:{ln.no}: {t.strip()[:200]}")
                out.count += 1
            continue
        kv = (_split(t) if bits & _KV and (":" in t or "=" in t or "|" in t or "\t" in t or " - " in t or "：" in t)
              else None)
        if kv and kv[0] and _kv(out, kv[0], kv[1], ln):
            continue
        if bits & _PROSE and (bits & _PROSE_SURE or PROSE_DIGITS.search(low)):
            if plan[0] or (plan[1] and not facts.gpus):
                _prose(out, ln, plan)
    t = facts.torch
    if t.version and t.cuda is None:
        t.cuda = cuda_from_local(t.version)
    return out.count
