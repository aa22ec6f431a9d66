"""The doctor's text output: a flutter-doctor style summary, grouped by area, with details under `-v`.

    render(facts, findings, verbose=False, console=None)   # prints to a Rich console (stdout by default)
    summary_line(facts, findings) -> str                    # the last line: ready, or what to fix first

Colour comes from Rich and switches off when stdout is not a terminal; where stdout cannot encode ✓ (a Windows
cp1252 console) the markers fall back to ASCII. Everything printed here is data: diagnostics go to stderr.
"""

from __future__ import annotations

import re
import sys

from rich.console import Console
from rich.text import Text

from tunedoc.doctor.facts import Facts, ProbeStatus
from tunedoc.doctor.findings import AREA_TITLES, AREAS, SEVERITIES, Finding

MARKS = {"ok": "✓", "warning": "!", "error": "✗", "info": "i", "none": "-"}
ASCII_MARKS = {"ok": "+", "warning": "!", "error": "x", "info": "i", "none": "-"}
STYLES = {"ok": "green", "warning": "yellow", "error": "bold red", "info": "cyan", "none": "dim"}


# The keys of `facts.quoted` (what doctor/reports/freetext.py read, and from which line), in words for -v's
# "Read from the report's text". A fact path names the fact it filled; a `said.` key is something the user wrote
# that fills no fact of its own (their "CUDA is not available").
QUOTED_LABELS = {
    "torch.version": "PyTorch version",
    "torch.cuda": "CUDA version PyTorch was built for",
    "torch.cuda_available": "whether PyTorch can use CUDA",
    "driver.version": "NVIDIA driver version",
    "driver.cuda_version": "CUDA version the driver supports",
    "toolkit.nvcc_version": "CUDA toolkit (nvcc) version",
    "cuda": "a CUDA version (which one is not said)",
    "gpu": "GPU",
    "gpu.compute_capability": "GPU compute capability",
    "python.version": "Python version",
    "platform.system": "operating system",
    "platform.is_wsl": "whether it runs in WSL",
    "platform.in_container": "whether it runs in a container",
    "said.cuda_unavailable": "the report says CUDA is not available",
}


def quoted_label(key: str) -> str:
    """A `facts.quoted` key in words: 'torch.version' -> 'PyTorch version', 'package.peft' -> 'package peft'."""
    if key in QUOTED_LABELS:
        return QUOTED_LABELS[key]
    if key.startswith("package."):
        return f"package {key.removeprefix('package.')}"
    return key


def can_encode(stream, text: str = "✓✗•") -> bool:
    enc = getattr(stream, "encoding", None) or "ascii"
    try:
        text.encode(enc)
        return True
    except (UnicodeEncodeError, LookupError):
        return False


def make_console(file=None, force_plain: bool = False) -> Console:
    file = file or sys.stdout
    # not a terminal (a pipe, a file, CI): no colour and no wrapping, so lines stay whole for grep and copy
    tty = not force_plain and hasattr(file, "isatty") and file.isatty()
    return Console(file=file, highlight=False, soft_wrap=not tty, no_color=True if force_plain else None,
                   force_terminal=False if force_plain else None)


def render(facts: Facts, findings: list[Finding], verbose: bool = False, console: Console | None = None,
           ascii_only: bool | None = None) -> None:
    console = console or make_console()
    if ascii_only is None:
        ascii_only = not can_encode(console.file)
    if ascii_only:
        console = _AsciiConsole(console)
    marks = ASCII_MARKS if ascii_only else MARKS
    bullet = "-" if ascii_only else "•"
    by_area: dict[str, list[Finding]] = {a: [] for a in AREAS}
    for f in findings:
        by_area.setdefault(f.area, []).append(f)
    sev_rank = {s: i for i, s in enumerate(SEVERITIES)}

    title = "Doctor summary" if verbose else "Doctor summary (details and fixes: tunedoc doctor -v)"
    if facts.origin == "report":
        title += f" — from {', '.join('stdin' if x == '-' else x for x in facts.sources) or 'a report'}"
    console.print(Text(title, style="bold"))
    for area in by_area:
        items = sorted(by_area[area], key=lambda f: sev_rank.get(f.severity, 9))
        name = AREA_TITLES.get(area, area)
        if not items:
            reason = _no_finding_reason(facts, area)
            _line(console, marks, "none", f"{name}: {reason}", indent=0)
            continue
        problems = [f for f in items if f.severity in ("error", "warning")]
        if len(items) == 1 and not verbose and items[0].severity in ("ok", "info"):
            _line(console, marks, items[0].severity, _with_area(name, items[0].title), indent=0)
            continue
        if len(items) == 1 and not problems:
            _line(console, marks, items[0].severity, _with_area(name, items[0].title), indent=0)
            _details(console, items[0], verbose, bullet, indent=4)
            continue
        head = problems[0].severity if problems else items[0].severity
        if len(items) == 1:
            _line(console, marks, head, _with_area(name, items[0].title), indent=0)
            _details(console, items[0], verbose, bullet, indent=4)
            continue
        _line(console, marks, head, name, indent=0)
        for f in items:
            _line(console, marks, f.severity, f.title, indent=4)
            _details(console, f, verbose, bullet, indent=8)
    for note in facts.conflicts:
        console.print(Text(f"Note: the report disagrees with itself: {note}", style="yellow"))
    if verbose and facts.quoted:
        console.print(Text("Read from the report's text:", style="bold"))
        for key, where in facts.quoted.items():
            console.print(Text(f"    {bullet} {quoted_label(key)}: {where}", style="dim"))
    if verbose:
        _probes(console, facts, marks)
    console.print()
    worst = min((f.severity for f in findings), key=lambda s: sev_rank.get(s, 9), default="ok")
    console.print(Text(summary_line(facts, findings), style=STYLES.get(worst, "") + " bold"))


class _AsciiConsole:
    """Prints through a Rich console, turning ✓ ✗ • — into ASCII for consoles that cannot encode them."""

    def __init__(self, console: Console):
        self._console = console
        self.file = console.file

    def print(self, *objects, **kwargs) -> None:
        fixed = []
        for o in objects:
            if isinstance(o, Text):
                o = o.copy()
                o.plain = ascii_safe(o.plain)
            elif isinstance(o, str):
                o = ascii_safe(o)
            fixed.append(o)
        self._console.print(*fixed, **kwargs)


def _with_area(area_title: str, title: str) -> str:
    """'PyTorch 2.7.0+cu128' and 'No NVIDIA GPU' stay as they are; 'Model cache ...' becomes 'Hugging Face: Model
    cache ...' (the area's last word, as a whole word, tells whether the title already names its area)."""
    word = area_title.split()[-1]
    return title if re.search(rf"\b{re.escape(word)}\b", title, re.I) else f"{area_title}: {title}"


def _line(console: Console, marks: dict, severity: str, text: str, indent: int) -> None:
    t = Text(" " * indent)
    t.append(f"[{marks.get(severity, '?')}]" if indent == 0 else f"{marks.get(severity, '?')}",
             style=STYLES.get(severity, ""))
    t.append(" " + text)
    console.print(t)


def _details(console: Console, f: Finding, verbose: bool, bullet: str, indent: int) -> None:
    if not verbose:
        return
    pad = " " * indent
    if f.detail:
        console.print(Text(pad + f.detail, style="dim"))
    for e in f.evidence:
        console.print(Text(f"{pad}{bullet} {e}", style="dim"))
    for fix in f.fixes:
        console.print(Text(f"{pad}Fix: {fix.title}", style="bold"))
        if fix.commands:
            # a copyable block: the commands alone on their lines, nothing before them but spaces
            for cmd in fix.commands:
                console.print(Text(f"{pad}    {cmd}", style="cyan"), soft_wrap=True)
            if fix.shell != "bash":
                console.print(Text(f"{pad}    ({fix.shell})", style="dim"))
        if fix.url:
            console.print(Text(f"{pad}    {fix.url}", style="dim underline"), soft_wrap=True)


def _probes(console: Console, facts: Facts, marks: dict) -> None:
    if not facts.probes:
        return
    console.print()
    console.print(Text("Probes", style="bold"))
    from tunedoc.doctor.run import PROBES

    order = {n: i for i, n in enumerate([*PROBES, "bnb"])}
    for name, st in sorted(facts.probes.items(), key=lambda kv: order.get(kv[0], 99)):
        sev = "ok" if st.ok and not st.error else ("info" if st.ok else "warning")
        text = f"{name}: {'done' if st.ok else 'failed'}"
        if st.elapsed_s is not None:
            text += f" in {st.elapsed_s:.2f} s"
        if st.error:
            text += f" — {st.error}"
        if st.exit_code not in (None, 0):
            text += f" (exit code {st.exit_code})"
        if st.timed_out:
            text += " (timed out)"
        _line(console, marks, sev, text, indent=4)
        if st.stderr_tail and not st.ok:
            for ln in st.stderr_tail.splitlines()[-5:]:
                console.print(Text("        " + ln, style="dim"))


def _no_finding_reason(facts: Facts, area: str) -> str:
    """Why an area has no line: not probed (a report that does not mention it), or a probe that failed."""
    from tunedoc.doctor.run import PROBE_AREAS

    if area == "driver" and facts.driver.present is False and facts.origin != "report":
        return "none installed (no NVML library, no nvidia-smi)"
    if area == "bnb" and (facts.torch.installed is False or facts.torch.import_ok is False):
        return "not checked: it needs a PyTorch that imports"
    failed = [f"{n}: {st.error}" for n, st in facts.probes.items()
              if n in PROBE_AREAS and area in PROBE_AREAS[n] and st.error]
    if failed:
        return "nothing to check (" + "; ".join(failed) + ")"
    known = area_facts(facts, area)
    if known:
        return known
    if facts.origin == "report":
        return "not in the report" + (f" (paste {NEXT_PASTE[area]} to check it)" if area in NEXT_PASTE else "")
    return "nothing to report"


# what to paste next, per area, when a report says nothing about it
NEXT_PASTE = {
    "driver": "`nvidia-smi`", "gpu": "`nvidia-smi`", "cuda": "`nvcc --version`",
    "torch": "`python -m torch.utils.collect_env`", "bnb": "`python -m bitsandbytes`",
    "platform": "`python -m torch.utils.collect_env`", "hf": "`huggingface-cli env`",
}


def _sm_range(arch: list[str] | None) -> str | None:
    nums = sorted(int(a.split("_")[1]) for a in arch or [] if re.match(r"^sm_\d+$", a))
    if not nums:
        return None
    return f"sm_{nums[0]}" if len(nums) == 1 else f"sm_{nums[0]}–sm_{nums[-1]}"


def area_facts(facts: Facts, area: str) -> str | None:
    """What is known about an area, in a few words (flutter doctor style): 'torch 2.14.1+cu130, CUDA 13.0,
    sm_75–sm_120; no GPU to use it'. None when nothing is known."""
    t, d, p = facts.torch, facts.driver, facts.platform
    parts: list[str] = []
    if area == "torch" and t.version:
        parts.append(f"torch {t.version}")
        parts.append(f"CUDA {t.cuda}" if t.cuda else ("CPU build" if t.cuda == "" else ""))
        parts.append(_sm_range(t.arch_list) or "")
        text = ", ".join(x for x in parts if x)
        if facts.gpus == [] and t.cuda:
            text += "; no GPU to use it"
        return text
    if area == "driver" and (d.version or d.cuda_version):
        return ", ".join(x for x in (f"driver {d.version}" if d.version else "",
                                     f"supports CUDA {d.cuda_version}" if d.cuda_version else "") if x)
    if area == "gpu" and facts.gpus:
        g = facts.gpus[0]
        more = f" (+{len(facts.gpus) - 1} more)" if len(facts.gpus) > 1 else ""
        cc = f", sm_{g.compute_capability.replace('.', '')}" if g.compute_capability else ""
        return f"{g.name}{cc}{more}"
    if area == "cuda" and facts.toolkit.nvcc_version:
        return f"nvcc {facts.toolkit.nvcc_version}"
    if area == "bnb" and facts.bnb.version:
        return f"bitsandbytes {facts.bnb.version}"
    if area == "platform" and p.system:
        bits = [p.distro or p.system, "WSL2" if p.is_wsl else "", f"in a {p.container_kind or ''} container".replace(
            "  ", " ") if p.in_container else "", f"Python {facts.python.version}" if facts.python.version else ""]
        return ", ".join(x for x in bits if x)
    return None


def _count_areas(findings: list[Finding], severity: str) -> list[str]:
    areas = []
    for f in findings:
        if f.severity == severity and f.area not in areas:
            areas.append(f.area)
    return areas


def ready_gpu(facts: Facts) -> str | None:
    """'RTX 4090, 24 GB' for the first GPU, from NVML/nvidia-smi facts or else torch's device list."""
    name, mb = None, None
    if facts.gpus:
        name, mb = facts.gpus[0].name, facts.gpus[0].memory_total_mb
    elif facts.torch.devices:
        d = facts.torch.devices[0]
        name, mb = d.get("name"), d.get("total_mb")
    if not name:
        return None
    name = name.replace("NVIDIA ", "").replace("GeForce ", "")
    more = f" (+{len(facts.gpus) - 1} more)" if facts.gpus and len(facts.gpus) > 1 else ""
    return f"{name}, {round(mb / 1024)} GB{more}" if mb else name + more


def summary_line(facts: Facts, findings: list[Finding]) -> str:
    errors = _count_areas(findings, "error")
    warnings = _count_areas(findings, "warning")
    titles = lambda areas: ", ".join(AREA_TITLES.get(a, a) for a in areas)  # noqa: E731
    if errors:
        first = next(f for f in findings if f.severity == "error")
        n = len(errors)
        nxt = first.fixes[0].title if first.fixes else first.title
        root = f" Root cause: {first.title} (it explains {len(first.explains)} more)." if first.explains else ""
        return (f"Doctor found issues in {n} categor{'y' if n == 1 else 'ies'} ({titles(errors)}): fix the ✗ lines "
                f"first.{root} Next step: {nxt} (tunedoc doctor -v shows the commands).")
    gpu = ready_gpu(facts)
    if warnings:
        first = next(f for f in findings if f.severity == "warning")
        if first.id == "no-gpu" and len(warnings) == 1:
            nxt = first.fixes[0].commands[0] if first.fixes and first.fixes[0].commands else "tunedoc demo"
            return (f"No NVIDIA GPU here: tunedoc can run its CPU demo ({nxt}); fine-tuning real models needs "
                    f"an NVIDIA GPU.")
        n = len(warnings)
        lead = f"Ready to train on {gpu}, with" if gpu else "No errors, but"
        nxt = first.fixes[0].title if first.fixes else first.title
        return (f"{lead} warnings in {n} categor{'y' if n == 1 else 'ies'} ({titles(warnings)}). "
                f"Next step: {nxt}.")
    unchecked = [AREA_TITLES[a] for a, known in (("torch", facts.torch.import_ok if facts.torch.import_ok is not None
                                                          else facts.torch.version),
                                                ("bnb", facts.bnb.import_ok if facts.bnb.import_ok is not None
                                                 else facts.bnb.version)) if known is None]
    if unchecked:  # a report without PyTorch in it (an nvidia-smi paste) cannot say "ready"
        where = "in the report" if facts.origin == "report" else "checked"
        return (f"No problem found{' on ' + gpu if gpu else ''}, but {' and '.join(unchecked)} "
                f"{'was' if len(unchecked) == 1 else 'were'} not {where}.")
    if gpu:
        return f"Ready to train on {gpu}."
    if facts.origin == "report":
        return "No problem found in the report."
    return "No problem found."


def ascii_safe(text: str) -> str:
    table = {"✓": "+", "✗": "x", "•": "-", "—": "-", "–": "-", "→": "->", "≥": ">=", "≤": "<=", "×": "x",
             "…": "...", "“": '"', "”": '"', "‘": "'", "’": "'"}
    text = "".join(table.get(c, c) for c in text)
    return text.encode("ascii", "replace").decode("ascii")


__all__ = ["render", "summary_line", "make_console", "can_encode", "ready_gpu", "ProbeStatus"]
