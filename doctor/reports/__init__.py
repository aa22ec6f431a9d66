"""Report parsers: pasted text -> the same Facts the probes produce, plus error signatures.

    facts = parse_text(text, source="issue.txt")     # any mix of reports, any order, noise around them
    facts = parse_files(["env.txt", "log.txt"])      # several files describe one machine: merged
    detect(text) -> ["collect_env", "traceback"]     # which report kinds are in the text

Recognized: tunedoc's own `doctor --json` / `--save` output, `python -m torch.utils.collect_env`, `nvidia-smi` (table,
`-q`, and the `topo -m` / `topo -p2p` matrices), `pip list`, `pip freeze`, `conda list`, `nvcc --version`,
`python -m bitsandbytes`, the env blocks of `transformers env` / `accelerate env` / `llamafactory-cli env`, Unsloth's
and ComfyUI's start-up banners, and Python tracebacks and training logs (error signatures:
`doctor.reports.signatures.TABLE`).

`ReportError` carries a message for the user (the CLI prints it and exits with code 2).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from tunedoc.doctor.facts import Facts, Signature, merge
from tunedoc.doctor.reports import envinfo, freetext, packages, signatures, smi, tools, topo
from tunedoc.doctor.reports.common import add_gpu, cuda_from_local, fill
from tunedoc.doctor.reports.text import Report, decode

__all__ = ["ReportError", "parse_text", "parse_files", "detect", "KINDS"]

MAX_BYTES = 50 * 1024 * 1024

# every kind `detect` can answer, in the order it reports them
KINDS = ("tunedoc-json", "collect_env", "env-block", "bitsandbytes", "nvidia-smi", "nvidia-smi-q", "nvidia-smi-topo",
         "nvcc", "pip-list", "pip-freeze", "conda-list", "unsloth", "comfyui", "traceback", "free-text")

HINT = ("paste the output of `python -m torch.utils.collect_env`, `nvidia-smi`, `pip list` or the full error "
        "traceback, or save a machine's facts with `tunedoc doctor --save FILE`")


class ReportError(Exception):
    """A report that cannot be used: empty, binary, unreadable, or with nothing recognizable in it."""


# --- tunedoc's own JSON --------------------------------------------------------------------------------------------
def _find_json(text: str) -> tuple[dict, int, int] | None:
    """The first JSON object in the text that looks like tunedoc output ({"version","facts","findings"} or facts),
    with its start and end offsets. Tried where a line starts with "{" (after whitespace); linear in the text."""
    dec = json.JSONDecoder()
    start = text.find("{")
    while start >= 0:
        eol = text.find("\n", start)
        if not text[text.rfind("\n", 0, start) + 1:start].strip():  # what `(?m)^\s*\{` finds
            found = _decode_at(dec, text, start, eol)
            if found is not None:
                return found
        # a later "{" on this line has something before it
        start = -1 if eol < 0 else text.find("{", eol)
    return None


def _decode_at(dec: json.JSONDecoder, text: str, start: int, eol: int) -> tuple[dict, int, int] | None:
    """The tunedoc JSON object at `start`, or None. Its own line is decoded first: a log's `{'loss': 0.5}` fails
    there at once, where a failed decode of the whole text costs the length of the text before it (json counts the
    lines up to the error: quadratic in a log with a dict per step)."""
    line = text[start:] if eol < 0 else text[start:eol]
    try:
        obj, end = dec.raw_decode(line)
        end += start
    except ValueError as e:
        # an error inside the line is an error in the text too (a string cannot run on past a newline); only one
        # at the line's end may be an object that goes on on the next lines
        if getattr(e, "pos", len(line)) < len(line) or eol < 0:
            return None
        try:
            obj, end = dec.raw_decode(text, start)
        except ValueError:
            return None
    if isinstance(obj, dict) and (isinstance(obj.get("facts"), dict) or
                                  {"driver", "torch", "platform"} <= obj.keys()):
        return obj, start, end
    return None


def _json_facts(obj: dict) -> Facts:
    data = obj["facts"] if isinstance(obj.get("facts"), dict) else obj
    try:
        return Facts.from_dict(data)
    except (TypeError, ValueError, AttributeError) as e:
        raise ReportError(f"the tunedoc JSON in this report is damaged ({e}); save it again with "
                          f"`tunedoc doctor --save FILE`") from None


# --- tracebacks and logs -------------------------------------------------------------------------------------------
WIN_PATH = re.compile(r"\b[A-Z]:\\(?:[^\\\s\"']+\\)+|\[WinError \d+\]|\\Scripts\\|\bwin_amd64\b|\.dll\b|PS [A-Z]:\\")
POSIX_SITE = re.compile(r"(/home/|/usr/(?:local/)?lib/python|/opt/conda|/root/|/workspace/)[^\s\"']*")
POSIX_SITE_WORDS = ("/home/", "/usr/lib/python", "/usr/local/lib/python", "/opt/conda", "/root/", "/workspace/")
TRACE_ANY = re.compile(r"(?m)^Traceback \(most recent call last\):|^[^\S\n]*File \"[^\"\n]+\", line \d+")
PY_FROM_PATH = re.compile(r"[Pp]ython(3\.\d+)[/\\](?:site|dist)-packages|[/\\][Pp]ython3(\d{2})[/\\]")
FOUND_GPU = re.compile(r"Found GPU\s?(\d+) (.+?) which is of (?:cuda|compute) capability (?:\(CC\) )?(\d+\.\d+)")
ARCH_LIST = re.compile(r"current PyTorch install supports CUDA capabilities ((?:(?:sm|compute)_\d+\w?\s*)+)")
TORCH_IN_TEXT = re.compile(r"\btorch(?:==|\s+|-)(\d+\.\d+\.\d+(?:\+(?:cu\d+|cpu))?)\b")
TORCH_AT_END = re.compile(r"\btorch$", re.M)


def _trace_facts(report: Report, facts: Facts) -> bool:
    """What a traceback or log reveals about the machine: the OS from its paths, Python, torch's CUDA build, GPUs
    torch warned about. True when it is a traceback or such a log. Each search reads the distinct lines once, and
    only when a cheap test says its words are there."""
    text, has = report.text, report.has
    is_trace = has("Traceback (most recent call last):", 'File "') and bool(TRACE_ANY.search(text))
    if has("Found GPU"):
        for m in FOUND_GPU.finditer(text):
            is_trace = True
            if not facts.gpus or not any(g.index == int(m.group(1)) for g in facts.gpus):
                add_gpu(facts, m.group(2), int(m.group(1)), compute_capability=m.group(3))
    if has(":\\", "[WinError ", "\\Scripts\\", "win_amd64", ".dll") and WIN_PATH.search(text):
        fill(facts.platform, "system", "Windows")
    elif is_trace and has(*POSIX_SITE_WORDS) and POSIX_SITE.search(text):
        fill(facts.platform, "system", "Linux")
    if has("microsoft-standard-WSL2", "/usr/lib/wsl/lib", "WSL2") and re.search(
            r"microsoft-standard-WSL2|/usr/lib/wsl/lib|\bWSL2\b", text):
        facts.platform.is_wsl = True
        fill(facts.platform, "system", "Linux")
    m = PY_FROM_PATH.search(text) if has("ython3") else None
    if m:
        fill(facts.python, "version", m.group(1) or f"3.{m.group(2)[1:]}")
    m = ARCH_LIST.search(text) if has("current PyTorch install supports CUDA capabilities") else None
    if m and facts.torch.arch_list is None:
        facts.torch.arch_list = m.group(1).split()
    # (tried on the shapes first; its `\s+` can also join "torch" at a line's end to a version on the next line)
    maybe = report.may(TORCH_IN_TEXT) or report.may(TORCH_AT_END)
    m = TORCH_IN_TEXT.search(text) if facts.torch.version is None and maybe else None
    if m and facts.torch.version is None:
        facts.torch.installed = True
        facts.torch.version = m.group(1)
    return is_trace


def _apply_signature_facts(facts: Facts) -> None:
    """Facts a signature states outright (a GPU and its capability, the torch arch list, the nvcc version)."""
    extra: list[Signature] = []
    for s in facts.signatures:
        d = s.data
        if s.id == "torch-arch-unsupported" and d.get("capability") and d.get("gpu"):
            name = re.sub(r"^.*?\b(NVIDIA|GeForce|Tesla|Quadro)\b", r"\1", d["gpu"])
            if not facts.gpus or not any(g.name == name for g in facts.gpus):
                if not facts.gpus:
                    add_gpu(facts, name, int(d.get("index", 0)), compute_capability=d["capability"])
            for g in facts.gpus or []:
                if g.name == name:
                    fill(g, "compute_capability", d["capability"])
        elif s.id == "nvcc-mismatch":
            fill(facts.toolkit, "nvcc_version", d.get("nvcc"))
            fill(facts.torch, "cuda", d.get("torch_cuda"))
        elif s.id in ("driver-not-loaded", "driver-library-mismatch"):
            facts.driver.present = True
            fill(facts.driver, "nvidia_smi_error", s.line)
        elif s.id == "extension-abi-mismatch" and d.get("have"):
            facts.torch.version = d["have"]  # "(you have 2.1.2+cpu)": what is installed, whatever else was quoted
            facts.torch.installed = True
            if d["have"].endswith("+cpu") and "+cu" in d.get("built_for", ""):
                # built for a CUDA torch, running on a CPU torch: the CPU build is the problem to fix
                facts.torch.cuda = ""
                extra.append(Signature(id="torch-cpu-build", line=s.line, source=s.source,
                                       data={"explains": "extension-abi-mismatch"}))
        elif s.id == "bnb-no-gpu-binary" and d.get("bnb_cuda") and facts.torch.cuda is None:
            facts.torch.cuda = f"{d['bnb_cuda'][:-1]}.{d['bnb_cuda'][-1]}"
    facts.signatures.extend(extra)


def _reclassify_bnb(facts: Facts) -> None:
    """A bitsandbytes that loaded no CUDA library is `bnb-too-old` when its version explains why."""
    from tunedoc.doctor import knowledge as K

    v = facts.bnb.version
    if not v:
        return
    reasons = []
    if facts.platform.system == "Windows" and K.version_lt(v, K.bnb_min("windows")[0]):
        reasons.append("windows")
    variant = K.variant_of(facts.torch.version, facts.torch.cuda)
    if variant and K.bnb_min(variant) and K.version_lt(v, K.bnb_min(variant)[0]):
        reasons.append(variant)
    if reasons:
        for s in facts.signatures:
            if s.id == "bnb-no-gpu-binary":
                s.id = "bnb-too-old"
                s.data["why"] = reasons


def _finish(facts: Facts) -> None:
    """Inferences once everything is read: CUDA from +cuXYZ, capabilities from GPU names, what torch's state means."""
    from tunedoc.doctor import knowledge as K

    t = facts.torch
    if t.version:
        t.installed = True
        if t.cuda is None:
            t.cuda = cuda_from_local(t.version) or ("" if t.version.endswith("+cpu") else None)
        if t.cuda is None and facts.platform.system == "Linux":
            t.cuda = K.pypi_default_cuda(t.version)  # an old release's plain Linux wheel: "1.3.0" is CUDA 10.1
    for g in facts.gpus or []:
        if g.name and not g.compute_capability:
            info = K.lookup_gpu(g.name)
            if info:
                g.compute_capability = info.cc
    for d in t.devices:  # a capability without a name (bitsandbytes, Unsloth) goes to the one GPU we know
        if d.get("capability") and facts.gpus and len(facts.gpus) == 1:
            fill(facts.gpus[0], "compute_capability", d["capability"])
    if facts.gpus and facts.driver.present is None:
        facts.driver.present = True if facts.driver.version else None
    if t.import_ok and t.cuda is None:
        # torch ran, but whether it is a CUDA build is unknown: leave it unknown so no rule guesses "CPU build"
        t.import_ok = None


def detect(text: str) -> list[str]:
    """Which report kinds are in `text` (see KINDS); [] when none is recognized."""
    return _parse(text, "<text>")[1]


def _parse(text: str, source: str) -> tuple[Facts, list[str]]:
    facts = Facts(origin="report")
    kinds: list[str] = []
    found_json = _find_json(text)
    if found_json is not None:
        obj, start, end = found_json
        facts = merge(facts, _json_facts(obj))
        facts.origin = "report"
        kinds.append("tunedoc-json")
        # its evidence lines quote logs: blank the JSON out (keeping line numbers) so they are not scanned again
        text = text[:start] + "\n" * text.count("\n", start, end) + text[end:]
    report = Report(text)  # cleaned once; every parser reads the same lines
    for kind, parser in (("collect_env", envinfo.parse_collect_env), ("env-block", envinfo.parse_env_block),
                         ("bitsandbytes", tools.parse_bnb), ("nvidia-smi", smi.parse_smi_table),
                         ("nvidia-smi-q", smi.parse_smi_q), ("nvidia-smi-topo", topo.parse_topo_report),
                         ("nvcc", tools.parse_nvcc),
                         ("pip-list", packages.parse_pip_list), ("pip-freeze", packages.parse_pip_freeze),
                         ("conda-list", packages.parse_conda_list)):
        if parser(report, facts):
            kinds.append(kind)
    kinds += envinfo.parse_banners(report, facts)
    is_trace = _trace_facts(report, facts)
    n_free = freetext.parse_freetext(report, facts, source)
    found = signatures.scan(report, source)
    scope = signatures.Scope(report)
    # a signature whose condition needs facts (Windows, WSL, MIG) is checked once all facts are in
    early = (None, "mig", "outside-range")
    for row, sig in found:
        if row.when in early and signatures.holds(row.when, facts, scope, sig):
            facts.signatures.append(sig)
    _apply_signature_facts(facts)
    for row, sig in found:
        if row.when not in early and signatures.holds(row.when, facts, scope, sig):
            facts.signatures.append(sig)
    if is_trace or facts.signatures:
        kinds.append("traceback")
    if n_free and not kinds:  # free text is a kind of its own only when no tool's format was recognized
        kinds.append("free-text")
    if (("torch.version" in facts.quoted or "torch.cuda" in facts.quoted) and facts.torch.import_ok is None
            and not any(s.id in ("torch-import-dll", "torch-missing") for s in facts.signatures)):
        # a torch version the user printed or wrote down: torch imported for them (unknown CUDA is reset by _finish)
        facts.torch.import_ok = True
    _reclassify_bnb(facts)
    _finish(facts)
    facts.sources = list(dict.fromkeys([*facts.sources, *kinds]))
    return facts, kinds


def parse_text(text: str, source: str = "<text>") -> Facts:
    """Facts from pasted text. Raises ReportError when the text is empty or nothing in it is recognized."""
    if not text or not text.strip():
        raise ReportError(f"{source} is empty: {HINT}")
    facts, kinds = _parse(text, source)
    if not kinds:
        raise ReportError(f"no report recognized in {source}: {HINT}")
    return facts


def read_report(path: str) -> str:
    """The text of a report file ('-' reads stdin). Raises ReportError for a missing, unreadable, binary file."""
    name = "standard input" if path == "-" else path
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_BYTES + 1)
        else:
            p = Path(path)
            if p.is_dir():
                raise ReportError(f"{path} is a directory: give the report file inside it")
            with p.open("rb") as f:
                data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except PermissionError:
        raise ReportError(f"{path}: permission denied (check the file's permissions)") from None
    except OSError as e:
        raise ReportError(f"{path}: cannot be read ({e.strerror or e})") from None
    if len(data) > MAX_BYTES:
        raise ReportError(f"{name} is over {MAX_BYTES // 2**20} MiB: give only the report or the end of the log")
    if not data.strip():
        raise ReportError(f"{name} is empty: {HINT}")
    try:
        return decode(data, name)
    except ValueError as e:
        raise ReportError(f"{e}: {HINT}") from None


def parse_files(paths: list[str]) -> Facts:
    """Facts from report files, merged in order (the first file that states a fact wins)."""
    if not paths:
        raise ReportError(f"no report file given: {HINT}")
    out: Facts | None = None
    for path in paths:
        facts = parse_text(read_report(path), source=Path(path).name if path != "-" else "stdin")
        facts.sources.insert(0, path)
        out = facts if out is None else merge(out, facts)
    out.origin = "report"
    return out
