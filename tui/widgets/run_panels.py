"""The Train screen's text panels: progress and speed, hardware, latest samples, and the log tail.

Each panel is updated from a RunView (tui.run_model) by its screen; none reads files or talks to a sibling."""

from __future__ import annotations

import time
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import RichLog, Static

from tunedoc.tui.gpu_monitor import HardwareSample
from tunedoc.tui.run_model import LogLine, RunView, duration

STATE_STYLE = {"running": "bold green", "evaluating": "bold magenta", "paused": "bold yellow",
               "completed": "bold cyan", "stopped": "bold cyan", "failed": "bold red", "starting": "yellow",
               "waiting": "yellow", "unknown": "dim"}


def _n(x: Any, fmt: str = "{:,.0f}", none: str = "-") -> str:
    return none if x is None else fmt.format(x)


def progress_bar(done: int, total: int | None, width: int) -> Text:
    if not total:
        return Text("")
    filled = int(width * min(done, total) / total)
    return Text("█" * filled, style="green") + Text("█" * (width - filled), style="grey23")


def set_content(widget: Static, content) -> None:
    """Update a panel, re-laying out the screen only when its line count changes: the panels change every step, and
    a layout pass of the whole screen per update costs CPU that the training run on this machine needs."""
    plain = content.plain if isinstance(content, Text) else str(content)
    if plain == getattr(widget, "_shown_plain", None) and not isinstance(content, Text):
        return
    lines = plain.count("\n")
    widget.update(content, layout=lines != getattr(widget, "_shown_lines", None))
    widget._shown_plain, widget._shown_lines = plain, lines


class StatsPanel(Static):
    """Step, epoch, loss, learning rate, tokens/s, samples/s, elapsed and ETA."""

    DEFAULT_CSS = "StatsPanel { height: auto; }"

    def show(self, view: RunView, state: str) -> None:
        width = self.content_size.width or 32
        last = view.last
        total = view.total_steps
        step = last.get("step", 0)
        t = Text()
        t.append(f"{state}", STATE_STYLE.get(state, ""))
        world = view.start.get("world_size") or 1
        if world > 1:
            t.append(f"  {world} ranks", "bold")
        if total:
            t.append(f"  step {step}/{total}  {100 * step / total:.0f}%\n")
            t.append_text(progress_bar(step, total, max(10, width)))
            t.append("\n")
        else:
            t.append(f"  step {step}\n")
        pairs = [("loss", _n(last.get("loss"), "{:.4f}"))]
        if view.evals:
            pairs.append(("eval", f"{view.eval_losses()[-1][1]:.4f}"))
        pairs += [
            ("lr", _n(last.get("lr"), "{:.2e}")),
            ("epoch", _n(last.get("epoch"), "{:.2f}")),
            ("tok/s", _n(last.get("tokens_per_s"))),
            ("smp/s", _n(last.get("samples_per_s"), "{:.2f}")),
            ("elapsed", duration(last.get("elapsed_s"))),
            ("ETA", duration(last.get("eta_s")) if state in ("running", "paused") else "-"),
        ]
        peak = view.peak_mem_mb
        if peak is not None:
            pairs.append(("peak " + ("VRAM" if last.get("mem_kind") == "cuda" else "RSS"), f"{peak:,.0f} MB"))
        ranks = last.get("rank_peak_mem_mb")
        if isinstance(ranks, list) and len(ranks) > 1:  # every rank's peak: the largest is the one that fits or not
            pairs.append(("ranks", "/".join(f"{m:,.0f}" for m in ranks) + " MB"))
        col = width // 2 if width >= 28 else width
        for i, (label, value) in enumerate(pairs):
            cell = Text(f"{label} ", "dim") + Text(value)
            if i % 2 == 0 and col < width:
                cell.pad_right(max(0, col - cell.cell_len))
                t.append_text(cell)
            else:
                t.append_text(cell)
                t.append("\n")
        t.rstrip()
        set_content(self, t)


class HardwarePanel(Static):
    """Per GPU: utilisation, memory, temperature, power. Without a GPU: the trainer process's CPU and RAM."""

    DEFAULT_CSS = "HardwarePanel { height: auto; }"

    def show(self, sample: HardwareSample | None) -> None:
        if sample is None:
            set_content(self, Text("reading the hardware...", style="dim"))
            return
        t = Text()
        if sample.kind == "gpu":
            for g in sample.gpus:
                t.append(f"GPU{g.index}", "bold")
                t.append(" ")
                t.append(f"{(g.name or 'n/a').removeprefix('NVIDIA ')}\n", "dim")
                mem = (f"{_n(g.mem_used_mb and g.mem_used_mb / 1024, '{:.1f}', 'n/a')}/"
                       f"{_n(g.mem_total_mb and g.mem_total_mb / 1024, '{:.1f}', 'n/a')} GB")
                t.append(f" util {_n(g.util_pct, '{:.0f}%', 'n/a')}  mem {mem}\n")
                t.append(f" {_n(g.temp_c, '{:.0f}°C', 'n/a')}  {_n(g.power_w, '{:.0f}', 'n/a')}"
                         f"/{_n(g.power_limit_w, '{:.0f} W', 'n/a')}\n")
        if sample.process is not None:
            p = sample.process
            if sample.kind != "gpu":
                t.append("no GPU: trainer process\n", "yellow")
            cores = f" of {p.cores * 100}%" if p.cores else ""
            t.append(f" CPU {_n(p.cpu_pct, '{:.0f}%', 'n/a')}{cores}  RAM {_n(p.rss_mb, '{:,.0f} MB', 'n/a')}\n")
        elif sample.kind != "gpu":
            t.append("no GPU", "yellow")
            t.append(" and the trainer process is not running\n", "dim")
        set_content(self, t)
        self.tooltip = sample.note or None


class SamplesPanel(Static):
    """The latest generations next to their prompts."""

    DEFAULT_CSS = "SamplesPanel { height: auto; }"

    def show(self, view: RunView, limit: int = 3) -> None:
        if not view.samples:
            set_content(self, Text("no samples yet (the run generates every sample_every steps)", style="dim"))
            return
        t = Text()
        latest_step = view.samples[-1].get("step")
        recent = [s for s in view.samples if s.get("step") == latest_step][-limit:]
        t.append(f"at step {latest_step}\n", "dim")
        for s in recent:
            t.append("> ", "bold cyan")
            t.append(f"{s.get('prompt', '')}\n", "cyan")
            t.append(f"{str(s.get('text', '')).strip()}\n\n")
        set_content(self, t)


class LogTail(RichLog):
    """trainer.log lines and the run's info/warning/error events; keeps the last few hundred lines."""

    DEFAULT_CSS = "LogTail { height: 1fr; }"
    STYLES = {"warning": "yellow", "error": "bold red", "info": "", "log": "dim"}

    def __init__(self, **kw) -> None:
        super().__init__(max_lines=500, wrap=True, markup=False, highlight=False, min_width=20, **kw)

    def on_resize(self, event) -> None:
        """Stay on the newest line when the panel changes size (RichLog scrolls to the end only on a write, so a
        layout settling after the last write left the tail a line or two short)."""
        self.call_after_refresh(self.scroll_end, animate=False, x_axis=False)

    def add(self, lines: list[LogLine]) -> None:
        for line in lines:
            stamp = time.strftime("%H:%M:%S ", time.localtime(line.t)) if line.t else ""
            self.write(Text(stamp, style="dim") + Text(line.text, style=self.STYLES.get(line.level, "")))
