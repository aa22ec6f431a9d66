"""What the Train and Runs screens know about one run, folded from its events. No Textual here.

    view = RunView()
    view.apply(events)           # any batch, any size, in file order; re-applying a resumed run's events is fine
    view.losses()                # [(step, loss)] sorted, latest event per step (a resume supersedes old steps)

The screens render from this; the tailer thread never touches it (only the event loop does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tunedoc.trainer.events import format_duration, format_event

MAX_LOG = 500  # log lines kept for the log tail
MAX_SAMPLES = 20
# a tqdm bar as it lands in a log file: "Loading weights:  48%|████▊     | 10/21 [00:00<00:00, 29.24it/s]"
PROGRESS = re.compile(r"^(?P<label>.*?):?\s*(?P<pct>\d{1,3})%\|")


@dataclass
class LogLine:
    t: float | None
    level: str  # "info" | "warning" | "error" | "log" (a trainer.log line)
    text: str


@dataclass
class RunView:
    start: dict[str, Any] = field(default_factory=dict)  # the latest start event
    steps: dict[int, dict[str, Any]] = field(default_factory=dict)  # step -> latest step event
    evals: dict[int, float] = field(default_factory=dict)
    scores: dict[int, dict[str, Any]] = field(default_factory=dict)  # step -> a generation eval's BLEU/ROUGE
    samples: list[dict[str, Any]] = field(default_factory=list)  # newest last
    log: list[LogLine] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    done: dict[str, Any] | None = None
    paused: bool = False
    phase: str | None = None  # "evaluating": the steps are done and the run scores its closing eval
    final: dict[str, Any] | None = None  # the closing eval's event (source "final"), base vs tuned
    last_error: dict[str, Any] | None = None
    warnings: int = 0
    errors: int = 0
    first_t: float | None = None
    last_t: float | None = None
    n_events: int = 0
    log_count: int = 0  # lines ever appended (the screen shows the ones after those it has shown)
    _seen: set[str] = field(default_factory=set, repr=False)
    _bar: tuple[str, int] | None = field(default=None, repr=False)  # (label, half) of the last progress line kept

    def apply(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Fold `events` in; returns the warning and error events among them (for notifications)."""
        alerts = []
        for e in events:
            self.n_events += 1
            t = e.get("t")
            if isinstance(t, (int, float)):
                self.first_t = t if self.first_t is None else self.first_t
                self.last_t = t
            kind = e.get("type")
            if kind == "start":
                self.start = e
                self.done = None
                self.paused = False
                self.phase = None
                resumed = e.get("resumed_from_step")
                if resumed:  # steps after the checkpoint were redone: drop the stale ones
                    for s in [s for s in self.steps if s > resumed]:
                        del self.steps[s]
            elif kind == "step" and isinstance(e.get("step"), int):
                self.steps[e["step"]] = e
            elif kind == "eval" and isinstance(e.get("step"), int) and _isnum(e.get("loss")):
                self.evals[e["step"]] = float(e["loss"])
            elif kind == "eval" and e.get("kind") == "generation" and e.get("source") == "final":
                self.final = e  # its line reaches the log tail through trainer.log, in order (the trainer echoes it)
                self.phase = None
            elif kind == "eval" and e.get("kind") == "generation" and isinstance(e.get("step"), int):
                self.scores[e["step"]] = e
            elif kind == "phase":
                self.phase = e.get("phase") or None
            elif kind == "sample":
                self.samples.append(e)
                del self.samples[:-MAX_SAMPLES]
            elif kind == "checkpoint":
                self.checkpoints.append(e)
            elif kind == "warning":
                self.warnings += 1
                self._log(e, "warning", format_event(e))
                alerts.append(e)
            elif kind == "error":
                self.errors += 1
                self.last_error = e
                self._log(e, "error", format_event(e))
                alerts.append(e)
            elif kind == "paused":
                self.paused = True
            elif kind == "resumed":
                self.paused = False
            elif kind == "done":
                self.done = e
                self.paused = False
                self.phase = None
        return alerts

    def add_log_lines(self, lines: list[str]) -> None:
        """trainer.log lines. Step lines are left out (the charts and stats show them); a warning or error the
        trainer echoed is shown once, whether its event or its log line came first."""
        for i, line in enumerate(lines):
            if line.startswith("step ") or line in self._seen:
                continue
            bar = PROGRESS.match(line)
            if bar:  # a progress bar ticks one line at a time: keep at most its start, half-way and end
                label, half = bar["label"].strip(), min(int(bar["pct"]), 100) // 50
                nxt = PROGRESS.match(lines[i + 1]) if i + 1 < len(lines) else None
                if (nxt and nxt["label"].strip() == label) or self._bar == (label, half):
                    continue
                self._bar = (label, half)
            else:
                self._bar = None
            self._seen.add(line)
            level = "log"
            low = line.lower()
            if low.startswith("warning"):
                level = "warning"
            elif low.startswith(("error", "traceback", "killed")) or "error:" in low[:40]:
                level = "error"
            self._append(LogLine(None, level, line))

    def add_note(self, level: str, text: str) -> None:
        """A line from the screen itself (e.g. the process died)."""
        self._append(LogLine(None, level, text))

    def _log(self, e: dict[str, Any], level: str, text: str) -> None:
        first, *rest = text.splitlines()
        if first in self._seen:
            return
        self._seen.add(first)
        self._append(LogLine(e.get("t"), level, text))

    def _append(self, line: LogLine) -> None:
        self.log.append(line)
        self.log_count += 1
        del self.log[:-MAX_LOG]

    def log_since(self, count: int) -> list[LogLine]:
        """Lines appended after the first `count` (at most the MAX_LOG kept)."""
        new = self.log_count - count
        return self.log[-new:] if new > 0 else []

    # --- derived values --------------------------------------------------------------------------------------
    @property
    def last(self) -> dict[str, Any]:
        return self.steps[max(self.steps)] if self.steps else {}

    def losses(self) -> list[tuple[int, float]]:
        return [(s, float(e["loss"])) for s, e in sorted(self.steps.items()) if _isnum(e.get("loss"))]

    def eval_losses(self) -> list[tuple[int, float]]:
        return sorted(self.evals.items())

    def score_series(self) -> list[tuple[str, list[tuple[int, float]]]]:
        """The generation evals' scores over the steps (0-100), for the metrics the run reports."""
        out = []
        for key, label in (("rougeL", "ROUGE-L"), ("bleu4", "BLEU-4"), ("exact_match", "exact")):
            points = [(s, float(e[key])) for s, e in sorted(self.scores.items()) if _isnum(e.get(key))]
            if points:
                out.append((label, points))
        return out

    def lrs(self) -> list[tuple[int, float]]:
        return [(s, float(e["lr"])) for s, e in sorted(self.steps.items()) if _isnum(e.get("lr"))]

    @property
    def total_steps(self) -> int | None:
        return self.start.get("total_steps")

    @property
    def peak_mem_mb(self) -> float | None:
        peaks = [e["peak_mem_mb"] for e in self.steps.values() if _isnum(e.get("peak_mem_mb"))]
        return max(peaks) if peaks else None

    def mean_tokens_per_s(self) -> float | None:
        vals = [float(e["tokens_per_s"]) for e in self.steps.values() if _isnum(e.get("tokens_per_s"))]
        return sum(vals) / len(vals) if vals else None

    def state(self) -> str:
        """running | evaluating (the closing eval) | paused | completed | stopped | failed | waiting (no start yet)."""
        if self.done is not None:
            return str(self.done.get("status") or "completed")
        if self.paused:
            return "paused"
        if self.phase == "evaluating":
            return "evaluating"
        return "running" if self.start else "waiting"

    def final_moved(self) -> str | None:
        """"held-out eval on 8 examples, base -> tuned: ROUGE-L 3.4 -> 62.4 (+59.0), ..." once the closing eval is in."""
        return format_event(self.final) if self.final else None


def _isnum(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x


def _fmt(x: Any, digits: int = 4) -> str:
    return f"{x:.{digits}f}" if _isnum(x) else "-"


duration = format_duration  # one duration format for the CLI and the screens
