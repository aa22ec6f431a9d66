"""The Doctor screen's state, without Textual: which probes run, what each area row says, the summary line.

The screen feeds it events (probe started/finished/cancelled, new findings) and renders what it returns, so the
logic is tested without a terminal and the screen stays a thin view.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tunedoc.doctor.facts import Facts, ProbeStatus
from tunedoc.doctor.findings import AREA_TITLES, AREAS, SEVERITIES, Finding

ICONS = {"ok": "✓", "warning": "!", "error": "✗", "info": "i", "failed": "?", "none": "·", "unknown": "·"}
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
SLOW_S = 2.0  # show the elapsed time (and that `c` cancels) after this long
FAILED_ID = "tui-probe-failed"  # pseudo-finding for a probe that could not answer (never a doctor id)


@dataclass
class ProbeRun:
    name: str
    started: float
    finished: float | None = None
    status: ProbeStatus | None = None
    cancelled: bool = False


@dataclass
class AreaView:
    area: str
    title: str
    state: str  # pending | ok | warning | error | info | failed | none | unknown
    line: str

    @property
    def icon(self) -> str:
        return ICONS.get(self.state, " ")


@dataclass
class DoctorModel:
    probe_areas: dict[str, list[str]]
    runs: dict[str, ProbeRun] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    generation: int = 0
    report: list[str] | None = None  # paths, when the facts come from a report
    facts: object = None  # the Facts last diagnosed: an area without a finding names what is known about it

    # --- events ------------------------------------------------------------------------------------------------
    def start(self, names: list[str], now: float, fresh: bool) -> int:
        if fresh:
            self.runs.clear()
            self.findings = []
            self.report = None
        self.generation += 1
        for name in names:
            self.runs[name] = ProbeRun(name, now)
        return self.generation

    def finish(self, name: str, status: ProbeStatus, now: float, generation: int) -> bool:
        """Record an answer; False when it belongs to an older run (ignored)."""
        run = self.runs.get(name)
        if generation != self.generation or run is None or run.finished is not None:
            return False
        run.finished, run.status = now, status
        return True

    def cancel_running(self, now: float) -> list[str]:
        names = self.running()
        for name in names:
            run = self.runs[name]
            run.finished, run.cancelled = now, True
            run.status = ProbeStatus(name, ok=False, error=f"cancelled after {now - run.started:.1f} s",
                                     elapsed_s=round(now - run.started, 1))
        return names

    def load_report(self, paths: list[str]) -> None:
        self.generation += 1
        self.runs.clear()
        self.report = list(paths)

    # --- queries -----------------------------------------------------------------------------------------------
    def running(self) -> list[str]:
        return [n for n, r in self.runs.items() if r.finished is None]

    def probes_for(self, area: str) -> list[str]:
        return [n for n, areas in self.probe_areas.items() if area in areas]

    def failed(self) -> list[ProbeRun]:
        return [r for r in self.runs.values() if r.status is not None and not r.status.ok]

    def all_findings(self) -> list[Finding]:
        """The doctor's findings plus one for each probe that could not answer, worst first."""
        out = list(self.findings)
        for run in self.failed():
            st = run.status
            assert st is not None
            areas = self.probe_areas.get(run.name) or ["platform"]
            evidence = [f"probe {run.name}: {st.error or 'failed'}"]
            if st.exit_code is not None:
                evidence.append(f"exit code {st.exit_code}")
            if st.timed_out:
                evidence.append("timed out")
            detail = ("You cancelled this check; press r to run it again." if run.cancelled else
                      "This check could not collect its facts, so findings that need them are missing.")
            if st.stderr_tail:
                detail += "\n\nLast lines of its error output:\n" + st.stderr_tail
            out.append(Finding(id=FAILED_ID, severity="warning", area=areas[0],
                               title=f"{run.name} check {'cancelled' if run.cancelled else 'failed'}: "
                                     f"{st.error or 'no answer'}", detail=detail, evidence=evidence))
        order = {s: i for i, s in enumerate(SEVERITIES)}
        area_order = {a: i for i, a in enumerate(AREAS)}
        return sorted(out, key=lambda f: (order.get(f.severity, 9), area_order.get(f.area, 99)))

    def _known(self, area: str) -> str | None:
        if self.facts is None:
            return None
        from tunedoc.doctor.render import area_facts  # lazy: the app paints before any doctor module loads

        return area_facts(self.facts, area)

    def area_views(self, now: float) -> list[AreaView]:
        views = []
        for area in AREAS:
            title = AREA_TITLES.get(area, area)
            probes = self.probes_for(area)
            running = [n for n in probes if n in self.runs and self.runs[n].finished is None]
            found = [f for f in self.findings if f.area == area]
            if running:
                slowest = min(running, key=lambda n: self.runs[n].started)
                elapsed = now - self.runs[slowest].started
                line = "checking…"
                if elapsed >= SLOW_S:
                    line = f"checking {slowest}… {elapsed:.0f} s (c cancels)"
                views.append(AreaView(area, title, "pending", line))
            elif found:
                order = {s: i for i, s in enumerate(SEVERITIES)}
                found.sort(key=lambda f: order.get(f.severity, 9))
                more = f"  (+{len(found) - 1} more)" if len(found) > 1 else ""
                views.append(AreaView(area, title, found[0].severity, found[0].title + more))
            else:
                failed = [self.runs[n] for n in probes if n in self.runs and self.runs[n].status
                          and not self.runs[n].status.ok]
                if failed:
                    st = failed[0].status
                    verb = "cancelled" if failed[0].cancelled else "failed"
                    views.append(AreaView(area, title, "failed", f"{failed[0].name} check {verb}: {st.error}"))
                elif self.report is not None:
                    known = self._known(area)
                    views.append(AreaView(area, title, "none" if known else "unknown", known or "not in the report"))
                elif probes and all(n in self.runs for n in probes):
                    views.append(AreaView(area, title, "none", self._known(area) or "nothing to report"))
                else:
                    views.append(AreaView(area, title, "unknown", "not checked"))
        return views

    def summary(self, facts: Facts) -> tuple[str, str]:
        """(text, severity class) for the summary line: what to do next."""
        running = self.running()
        if running:
            done = len(self.runs) - len(running)
            return f"Checking this machine… {done} of {len(self.runs)} checks answered", "pending"
        prefix = f"Report {', '.join(self.report)}: " if self.report is not None else ""
        errors = [f for f in self.findings if f.severity == "error"]
        warnings = [f for f in self.findings if f.severity == "warning"]
        if errors:
            n = len(errors)
            return f"{prefix}Fix {n} problem{'s' if n > 1 else ''} first: select one for the exact commands", "error"
        if any(f.id == "no-gpu" for f in self.findings):
            if self.report is not None:
                return f"{prefix}no NVIDIA GPU in it", "warning"
            return "No NVIDIA GPU: press D to train the CPU demo and watch it", "warning"
        if self.failed():
            n = len(self.failed())
            return f"{prefix}{n} check{'s' if n > 1 else ''} did not answer: press r on it to re-run", "warning"
        gpu = gpu_phrase(facts)
        tail = f" ({len(warnings)} warning{'s' if len(warnings) > 1 else ''} to read)" if warnings else ""
        if gpu:
            return f"{prefix}Ready to train on {gpu}{tail}", "warning" if warnings else "ok"
        return f"{prefix}No problems found{tail}", "warning" if warnings else "ok"


def gpu_phrase(facts: Facts) -> str | None:
    """'RTX 4090, 24 GB' / '2 × A100-SXM4-80GB, 80 GB each' from NVML/nvidia-smi facts, else torch's devices."""
    gpus = [(g.name, g.memory_total_mb) for g in (facts.gpus or []) if g.name]
    if not gpus:
        gpus = [(d.get("name"), d.get("total_mb")) for d in facts.torch.devices or [] if d.get("name")]
    if not gpus:
        return None
    name, mb = gpus[0]
    name = short_gpu_name(name)
    size = f", {round(mb / 1024)} GB" if mb else ""
    if len(gpus) > 1 and all(g == gpus[0] for g in gpus):
        return f"{len(gpus)} × {name}{size}{' each' if size else ''}"
    if len(gpus) > 1:
        return f"{name}{size} (+{len(gpus) - 1} more GPU{'s' if len(gpus) > 2 else ''})"
    return f"{name}{size}"


def short_gpu_name(name: str) -> str:
    for prefix in ("NVIDIA GeForce ", "NVIDIA RTX ", "NVIDIA ", "GeForce "):
        if name.startswith(prefix):
            rest = name[len(prefix):]
            return ("RTX " + rest) if prefix == "NVIDIA RTX " else rest
    return name


def copy_facts(facts: Facts) -> Facts:
    return Facts.from_dict(facts.to_dict())


def apply_changes(dst: Any, base: Any, new: Any) -> None:
    """Apply to `dst` what changed from `base` to `new` (a probe's copy after it ran): field by field, and key by
    key in dicts, so probes answering in any order never overwrite each other's facts."""
    for f in dataclasses.fields(new):
        before, after = getattr(base, f.name), getattr(new, f.name)
        current = getattr(dst, f.name)
        if dataclasses.is_dataclass(after) and dataclasses.is_dataclass(before) and current is not None:
            apply_changes(current, before, after)
        elif isinstance(after, dict) and isinstance(before, dict) and isinstance(current, dict):
            for key, value in after.items():
                if before.get(key) != value:
                    current[key] = copy.deepcopy(value)
        elif after != before:
            setattr(dst, f.name, copy.deepcopy(after))
