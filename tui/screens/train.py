"""The Train screen: a start form, then the live view of a run (loss and learning-rate charts, progress and speed,
hardware, samples, log tail) with save / pause / resume / stop / export.

A tailer thread (tui.tail) posts new events; handlers fold them into a RunView and mark the screen dirty; a 4 Hz
timer redraws only when something changed, so a fast writer never makes the charts redraw faster than that.
Hardware is sampled by a thread worker that re-arms only after it finished (dolphie's pattern).
The form's GPU field lists this machine's GPUs (NVML, asked once by a thread worker), every one selected as
`tunedoc train` does by default, or offers CPU processes on a box without one; with several processes a strategy
field (auto/ddp/fsdp, as `--strategy`) appears. The run starts with trainer.launch's plan of that choice; the
Profile screen's hand-over fills in the GPUs and the strategy its figures were for.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path
from typing import Iterable

from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, ContentSwitcher, Footer, Input, Select, SelectionList, Static

from tunedoc.trainer.events import format_event
from tunedoc.tui.messages import HardwareSampled, RunEvents, RunStatusRead, TrainingChoice
from tunedoc.tui.run_controls import confirm_stop, send_control
from tunedoc.tui.run_model import RunView, duration
from tunedoc.tui.tail import EventTailer
from tunedoc.tui.train_backend import TrainBackend
from tunedoc.tui.widgets.dialogs import ConfirmCommands
from tunedoc.tui.widgets.loss_chart import LossChart
from tunedoc.tui.widgets.run_panels import STATE_STYLE, HardwarePanel, LogTail, SamplesPanel, StatsPanel, set_content

REDRAW_S = 0.5  # charts and panels redraw at most twice a second (plotext redraws cost CPU the run needs)
HARDWARE_S = 1.0
WIDE = 110
ALERT_WINDOW_S = 10  # on attach, only warnings/errors newer than this become notifications (the rest is history)
STRATEGY_WORDS = {
    "auto": "auto: decided at start from the model's estimate and the GPUs' memory (ddp when the whole model fits "
            "each GPU, fsdp when only its shards fit; ddp for CPU processes)",
    "ddp": "ddp: every process holds the whole model; the LoRA gradients are all-reduced",
    "fsdp": "fsdp: weights, adapter and optimizer states sharded over the processes (FSDP-QLoRA); rank 0 reads the "
            "model into CPU RAM and each GPU only ever holds its shards",
}


class TrainScreen(Screen):
    CSS_PATH = Path(__file__).with_name("train.tcss")
    HELP_TITLE = "Train"
    BINDINGS = [
        Binding("s", "control('save')", "Save", tooltip="Ask the run to write a checkpoint now"),
        Binding("p", "control('pause')", "Pause", tooltip="Pause after the current step"),
        Binding("r", "control('resume')", "Resume", tooltip="Resume a paused run"),
        Binding("x", "stop", "Stop", tooltip="Save a checkpoint and the adapter, then stop (asks first)"),
        Binding("e", "export", "Export", tooltip="Export the finished run's adapter (tunedoc export)"),
        Binding("d", "show_dir", "Run dir", tooltip="Show (and copy) the run directory's path"),
        Binding("l", "toggle_bottom", "Log/Samples", show=False, tooltip="Switch the bottom panel (small terminals)"),
        Binding("n", "new_run", "New run", tooltip="Back to the start form"),
    ]

    def __init__(self) -> None:
        super().__init__()
        try:
            self.backend: TrainBackend = self.app.backend("train")
        except LookupError:
            self.backend = TrainBackend()
        self.run_dir: Path | None = None
        self.view = RunView()
        self.status: dict = {}
        self.hardware = None
        self.generation = 0
        self.tailer: EventTailer | None = None
        self.dirty = False
        self.attached_at = 0.0
        self.sets: list[str] = []
        self.data_report: dict | None = None
        self.last_lag: float | None = None
        self._log_shown = 0
        self._died_noted = 0
        self.gpu_names: list[str] | None = None  # this machine's GPUs, once a worker asked NVML
        self.wanted_gpus: str | None = None  # the Profile screen's --gpus, applied when the GPU list is in
        self.handed_strategy: tuple[str, str | None] | None = None  # the Profile screen's (strategy, why)

    # --- layout ------------------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with ContentSwitcher(initial="form", id="switcher"):
            with VerticalScroll(id="form"):
                yield Static("Start a training run", classes="form-title")
                yield Static("Model (a local directory or a Hub id)", classes="label")
                yield Input(placeholder="e.g. Qwen/Qwen2.5-0.5B-Instruct or ./models/my-model", id="model", compact=True)
                yield Static("Data file (.json/.jsonl, or a directory with dataset_info.json)", classes="label")
                yield Input(placeholder="e.g. data/train.jsonl  (Enter checks it)", id="data", compact=True)
                yield Static("", id="datacheck")
                with Horizontal(classes="row"):
                    with Vertical():
                        yield Static("Profile", classes="label")
                        yield Input(value="qlora-min", id="profile", compact=True)
                    with Vertical():
                        yield Static("Run name (optional)", classes="label")
                        yield Input(placeholder="my-run", id="name", compact=True)
                yield Static("", id="sets")
                yield Static("GPUs", classes="label", id="gpus-label")
                yield SelectionList(id="gpus", compact=True)
                yield Input(value="1", id="nproc", type="integer", compact=True,
                            tooltip="More than 1: that many processes on the CPU (gloo) through torchrun")
                with Horizontal(id="strategy-row", classes="row"):
                    yield Static("Strategy", id="strategy-label")
                    yield Select([(name, name) for name in STRATEGY_WORDS], value="auto", allow_blank=False,
                                 id="strategy", compact=True,
                                 tooltip="How several processes share the model (tunedoc train --strategy)")
                yield Static("looking for this machine's GPUs…", id="launch-plan")
                with Horizontal(classes="row buttons"):
                    yield Button("Browse…", id="browse", compact=True, tooltip="Pick the data file from a folder tree")
                    yield Button("Check data", id="check", compact=True)
                    yield Button("Start", id="start", variant="success", compact=True)
                    yield Button("Demo", id="demo", variant="primary", compact=True,
                                 tooltip="Build a tiny model locally and teach it its name (no GPU or download)")
                yield Static("No model or GPU at hand? Demo trains a tiny local model in minutes. Or attach to a run "
                             "on the Runs screen (5), or `tunedoc watch RUN`.", classes="hint")
            with Vertical(id="live"):
                yield Static("", id="title", markup=False)
                yield Static("", id="alert", markup=False)
                yield Static("", id="outcome", markup=False)
                with Horizontal(id="top"):
                    with Vertical(id="charts"):
                        yield LossChart("loss", id="loss")
                        yield LossChart("learning rate", id="lr")
                    with Vertical(id="side"):
                        yield StatsPanel(id="stats")
                        yield HardwarePanel(id="hw")
                with Horizontal(id="bottom"):
                    yield LogTail(id="log")
                    yield SamplesPanel(id="samples")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#loss").border_title = "loss"
        self.query_one("#side").border_title = "progress"
        self.query_one("#log").border_title = "log"
        self.query_one("#samples").border_title = "samples"
        self.set_interval(REDRAW_S, self._redraw_if_dirty)
        self._layout(self.size.width)
        self._find_gpus()
        if self.backend.attach is not None:
            self.attach(self.backend.attach)

    def on_resize(self, event) -> None:
        self._layout(event.size.width)
        self.dirty = True

    def _layout(self, width: int) -> None:
        self.set_class(width >= WIDE, "-wide")

    def on_unmount(self) -> None:
        if self.tailer is not None:
            self.tailer.stop()

    # --- attaching to a run --------------------------------------------------------------------------------------
    def attach(self, run_dir: str | Path) -> None:
        """Show `run_dir` live, from its first event (the whole history), and follow it."""
        if self.tailer is not None:
            self.tailer.stop()
        self.run_dir = Path(run_dir)
        self.generation += 1
        self.view = RunView()
        self.status = self.backend.status(self.run_dir)
        self.hardware = None
        self.attached_at = time.time()
        self._log_shown = 0
        self.query_one(LogTail).clear()
        self.query_one(ContentSwitcher).current = "live"
        self.tailer = EventTailer(self.run_dir, self, self.generation, self.backend.status, poll_s=self.backend.poll_s)
        self.tailer.start()
        self._sample_hardware(self.generation)
        self.dirty = True  # drawn by the next tick, once the live view has its size

    @on(RunEvents)
    def _on_events(self, message: RunEvents) -> None:
        if message.generation != self.generation:
            return
        alerts = self.view.apply(message.events)
        self.view.add_log_lines(message.log_lines)
        self.last_lag = message.lag_s
        recent = lambda e: isinstance(e.get("t"), (int, float)) and e["t"] >= self.attached_at - ALERT_WINDOW_S
        for e in alerts:
            if recent(e):
                severity = "error" if e["type"] == "error" else "warning"
                self.notify(str(e.get("message")), title=f"run {severity}", severity=severity,
                            timeout=10 if severity == "error" else 6)
        for e in message.events:  # the closing eval's result, as it lands
            if e.get("type") == "eval" and e.get("source") == "final" and recent(e):
                self.notify(format_event(e), title="closing eval", timeout=15)
        self.dirty = True

    @on(RunStatusRead)
    def _on_status(self, message: RunStatusRead) -> None:
        if message.generation == self.generation and message.status != self.status:
            self.status = message.status
            self.dirty = True

    @work(thread=True, group="hardware", exclusive=True)
    def _sample_hardware(self, generation: int) -> None:
        pid = self.status.get("pid") if self.backend.is_active(self.status) else None
        sample = self.backend.sample_hardware(pid)
        self.post_message(HardwareSampled(sample))
        # re-arm only after this sample is in: polls never overlap
        self.app.call_from_thread(self._rearm_hardware, generation)

    def _rearm_hardware(self, generation: int) -> None:
        if generation == self.generation and self.is_attached:
            self.set_timer(HARDWARE_S, lambda: self._sample_hardware(generation))

    @on(HardwareSampled)
    def _on_hardware(self, message: HardwareSampled) -> None:
        self.hardware = message.sample
        self.dirty = True

    # --- drawing -------------------------------------------------------------------------------------------------
    def state(self) -> str:
        """What the run is doing: status.json (corrected for a dead process) over the events."""
        st = self.status.get("status")
        if st in ("failed", "completed", "stopped"):
            return st
        if st == "paused" or self.view.paused:
            return "paused" if self.view.state() not in ("completed", "stopped", "failed") else self.view.state()
        if self.status.get("phase") == "evaluating" and self.view.state() == "running":
            return "evaluating"  # status.json said so before the phase event was read
        return self.view.state() if self.view.start else (st or "waiting")

    def _redraw_if_dirty(self) -> None:
        if not self.dirty or self.run_dir is None:
            return
        self.dirty = False
        view, state = self.view, self.state()
        title = f" {self.run_dir.name}  ·  {state}"
        if view.start:
            title += f"  ·  {Path(str(view.start.get('model', ''))).name}  ·  {view.start.get('profile')}"
            title += f"  ·  {view.start.get('device')}"
        set_content(self.query_one("#title", Static), title)
        self.query_one("#title").set_classes(f"-{state}")
        alert = self.query_one("#alert", Static)
        error = self.status.get("error") if state == "failed" else None
        if state == "failed" and view.last_error and not self.status.get("died"):
            error = format_event(view.last_error)
        set_content(alert, f"✗ {error}" if error else "")
        alert.display = bool(error)
        outcome = self.query_one("#outcome", Static)  # the closing eval: how far the scores moved
        moved = view.final_moved()
        set_content(outcome, f"✓ {moved}" if moved else "")
        outcome.display = bool(moved)
        series = [("train", view.losses())]
        if view.evals:
            series.append(("eval", view.eval_losses()))
        self.query_one("#loss", LossChart).set_series(series)
        second = self.query_one("#lr", LossChart)
        scores = view.score_series()
        if scores:  # the profile's eval_every scores answers while training: plot them instead of the schedule
            second.border_title = "eval scores (0-100)"
            second.set_series(scores)
        else:
            second.set_series([("lr", view.lrs())])
        self.query_one(StatsPanel).show(view, state)
        self.query_one(HardwarePanel).show(self.hardware)
        self.query_one(SamplesPanel).show(view)
        log = self.query_one(LogTail)
        # once the history is in, so the note lands after the run's last lines
        if state == "failed" and self.status.get("died") and view.n_events and self._died_noted != self.generation:
            self._died_noted = self.generation
            view.add_note("error", str(self.status["error"]))
            self.notify(str(self.status["error"]), title="run failed", severity="error", timeout=15)
        log.add(view.log_since(self._log_shown))
        self._log_shown = view.log_count

    # --- actions -------------------------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        live = self.run_dir is not None and self.query_one(ContentSwitcher).current == "live"
        if action in ("control", "stop", "show_dir", "toggle_bottom", "new_run"):
            return live
        if action == "export":
            return live and self.state() in ("completed", "stopped")
        return True

    def action_control(self, action: str) -> None:
        if self.run_dir is not None:
            send_control(self, self.backend, self.run_dir, action)

    def action_stop(self) -> None:
        if self.run_dir is not None:
            confirm_stop(self, self.run_dir.name, lambda: self.action_control("stop"))

    def action_show_dir(self) -> None:
        if self.run_dir is not None:
            self.app.copy_to_clipboard(str(self.run_dir))
            self.notify(str(self.run_dir), title="run directory (copied)", timeout=10)

    def action_toggle_bottom(self) -> None:
        self.toggle_class("-samples")

    def action_new_run(self) -> None:
        self.query_one(ContentSwitcher).current = "form"
        self.query_one("#model", Input).focus()

    def action_export(self) -> None:
        if self.run_dir is None:
            return
        argv = self.backend.export_argv(self.run_dir)

        def answered(yes: bool | None) -> None:
            if yes:
                self._export(argv)

        self.app.push_screen(ConfirmCommands("Export the adapter?", [shlex.join(argv)]), answered)

    @work(thread=True, group="export", exclusive=True)
    def _export(self, argv: list[str]) -> None:
        self.app.call_from_thread(self.notify, "exporting...", title="export")
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
            ok, out = proc.returncode == 0, (proc.stdout + proc.stderr).strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            ok, out = False, str(e)
        self.app.call_from_thread(self.notify, out.splitlines()[-1] if out else "done", title="export " +
                                  ("done" if ok else "failed"), severity="information" if ok else "error",
                                  timeout=15)

    # --- the start form ------------------------------------------------------------------------------------------
    @on(TrainingChoice)
    def _on_choice(self, message: TrainingChoice) -> None:
        self.query_one("#model", Input).value = message.model
        self.query_one("#profile", Input).value = message.profile_name
        self.sets = list(message.sets)
        self.query_one("#sets", Static).update(
            f"overrides from the Profile screen: {' '.join(self.sets)}" if self.sets else "")
        self.wanted_gpus = message.gpus
        self.handed_strategy = (message.strategy, message.strategy_why) if message.strategy else None
        self.query_one("#strategy", Select).value = message.strategy or "auto"
        if self.gpu_names is not None:
            self._select_gpus(message.gpus)
        self.query_one(ContentSwitcher).current = "form"
        self.query_one("#data", Input).focus()

    # the GPU field: one line per GPU of this machine (all selected: train's default), or CPU processes without one
    @work(thread=True, group="gpus", exclusive=True)
    def _find_gpus(self) -> None:
        names = self.backend.gpu_names()  # NVML: not on the UI thread
        self.app.call_from_thread(self._show_gpus, names)

    def _show_gpus(self, names: list[str]) -> None:
        self.gpu_names = names
        self.set_class(bool(names), "-gpus")
        self.set_class(not names, "-cpu")
        self.query_one("#gpus-label", Static).update(
            "GPUs (one process each; space toggles)" if names else
            "CPU processes (no NVIDIA GPU here; more than 1 tries data-parallel training)")
        box = self.query_one("#gpus", SelectionList)
        box.clear_options()
        box.add_options([(f"GPU {i} · {name}", i, True) for i, name in enumerate(names)])
        if names:
            box.highlighted = 0  # space toggles the first GPU as soon as the list has the focus
        self._select_gpus(self.wanted_gpus)

    def _select_gpus(self, spec: str | None) -> None:
        """Select the GPUs of a `--gpus` choice (as plan_launch reads it), or every GPU."""
        box = self.query_one("#gpus", SelectionList)
        ids = None  # every GPU
        if spec:
            try:
                ids = self.backend.plan(spec)["gpus"] or []
            except ValueError:  # e.g. "--gpus 2" handed over from another machine's fit: keep every GPU
                pass
        with box.prevent(SelectionList.SelectedChanged):
            box.deselect_all()
            for i in (range(len(self.gpu_names or [])) if ids is None else ids):
                box.select(i)
        self._render_plan()

    def launch_choice(self) -> tuple[str | None, int | None]:
        """The form's (--gpus, --nproc): None, None is train's default (every GPU, or one CPU process). ValueError
        when no GPU is chosen."""
        if self.gpu_names:
            chosen = sorted(self.query_one("#gpus", SelectionList).selected)
            if not chosen:
                raise ValueError("choose at least one GPU (space toggles one)")
            if len(chosen) == len(self.gpu_names):
                return None, None
            return ",".join(map(str, chosen)) + ("," if len(chosen) == 1 else ""), None  # "1,": GPU 1, not a count
        text = self.query_one("#nproc", Input).value.strip()
        n = int(text) if text.lstrip("-").isdigit() else 1
        return None, (n if n != 1 else None)

    def strategy_choice(self, plan: dict) -> str | None:
        """The strategy field's value for a plan of several processes (`--strategy`); None for one process."""
        if int(plan.get("nproc") or 1) < 2:
            return None
        return str(self.query_one("#strategy", Select).value)

    @on(SelectionList.SelectedChanged, "#gpus")
    @on(Input.Changed, "#nproc")
    @on(Select.Changed, "#strategy")
    def _render_plan(self) -> None:
        if self.gpu_names is None:
            return
        plan_line = self.query_one("#launch-plan", Static)
        try:
            plan = self.backend.plan(*self.launch_choice())
        except ValueError as e:
            plan_line.set_class(True, "-error")
            plan_line.update(f"✗ {e}")
            self.set_class(False, "-multi")
            return
        plan_line.set_class(False, "-error")
        strategy = self.strategy_choice(plan)
        self.set_class(strategy is not None, "-multi")
        n, ids = plan["nproc"], plan.get("gpus")
        if plan["device"] == "cuda" and n == 1:
            text = f"one process on GPU {ids[0]} ({plan['gpu_names'][0]})"
        elif plan["device"] == "cuda":
            text = (f"{n} processes, one per GPU ({', '.join(map(str, ids))}), through torchrun: data-parallel, "
                    f"global batch = micro_batch × grad_accum × {n}")
        elif n > 1:
            text = f"{n} processes on the CPU (gloo) through torchrun: data-parallel, to try it without GPUs"
        else:
            text = "one process (no GPU: it trains on the CPU)"
        notes = plan.get("notes") or []
        if strategy is not None:
            text += f"\nstrategy {STRATEGY_WORDS[strategy]}"
            handed, why = self.handed_strategy or (None, None)
            if handed == strategy and why:
                text += f"\nfrom the Profile screen: {why}"
        plan_line.update(text + (f"\n{notes[0]}" if notes else ""))

    @on(Button.Pressed, "#browse")
    def action_browse(self) -> None:
        from tunedoc.tui.widgets.dialogs import PickFile

        current = self.query_one("#data", Input).value.strip()
        start = Path(current).expanduser().parent if current else Path.cwd()
        if not start.is_dir():
            start = Path.cwd()

        def picked(path: str | None) -> None:
            if path:
                self.query_one("#data", Input).value = path
                self._run_check()

        self.app.push_screen(PickFile(str(start), title="Pick the data file"), picked)

    @on(Input.Submitted, "#data")
    @on(Button.Pressed, "#check")
    def _check_pressed(self) -> None:
        self._run_check()

    def _run_check(self) -> None:
        data = self.query_one("#data", Input).value.strip()
        if not data:
            self.query_one("#datacheck", Static).update("give a data file to check")
            return
        model = self.query_one("#model", Input).value.strip() or None
        self.data_report = None
        self.query_one("#datacheck", Static).update(f"checking {data}" + (" with the model's tokenizer..."
                                                                          if model else "..."))
        self._check_data(data, model)

    @work(thread=True, group="datacheck", exclusive=True)
    def _check_data(self, data: str, model: str | None) -> None:
        report = self.backend.check_data(data, model)
        self.app.call_from_thread(self._show_check, report)

    def _show_check(self, report: dict) -> None:
        self.data_report = report
        w = self.query_one("#datacheck", Static)
        if not report.get("ok"):
            probs = report.get("problems", [])
            lines = [f"[b red]{len(probs)} problem(s) in the data:[/]"]
            lines += [f"  {p.get('where')}: {p.get('message')}" for p in probs[:8]]
            if len(probs) > 8:
                lines.append(f"  ... and {len(probs) - 8} more (`tunedoc data check FILE` lists all)")
            w.update("\n".join(_escape(l) if i else l for i, l in enumerate(lines)))
            return
        lengths = report.get("lengths", {})
        roles = ", ".join(f"{k} {v}" for k, v in report.get("roles", {}).items())
        w.update(_escape(f"ok: {report.get('conversations')} conversations ({roles}); "
                         f"{lengths.get('unit', 'tokens')}: mean {lengths.get('mean', '-')}, "
                         f"max {lengths.get('max', '-')}"))

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        model = self.query_one("#model", Input).value.strip()
        data = self.query_one("#data", Input).value.strip()
        missing = [n for n, v in (("a model", model), ("a data file", data)) if not v]
        if missing:
            self.notify(f"give {' and '.join(missing)} first", title="cannot start", severity="error")
            return
        if self.data_report is not None and not self.data_report.get("ok"):
            self.notify("the data check found problems: fix them first (shown under the data file)",
                        title="cannot start", severity="error")
            return
        profile = self.query_one("#profile", Input).value.strip() or None
        name = self.query_one("#name", Input).value.strip() or None
        strategy = None
        try:
            gpus, nproc = self.launch_choice()
            if self.gpu_names is not None:  # else the worker asks NVML and plans
                strategy = self.strategy_choice(self.backend.plan(gpus, nproc))
        except ValueError as e:
            self.notify(str(e), title="cannot start", severity="error")
            return
        self._start(model, data, profile, name, gpus=gpus, nproc=nproc, strategy=strategy)

    @work(thread=True, group="start", exclusive=True)
    def _start(self, model: str, data: str, profile: str | None, name: str | None, gpus: str | None = None,
               nproc: int | None = None, strategy: str | None = None) -> None:
        try:
            handle = self.backend.start(model, data, profile, self.sets, name, gpus=gpus, nproc=nproc,
                                        strategy=strategy)
        except Exception as e:  # ProfileError, FileNotFoundError, RuntimeError: all carry a message that says why
            self.app.call_from_thread(self.notify, str(e), title="cannot start", severity="error", timeout=12)
            return
        self.app.call_from_thread(self.attach, handle.run_dir)

    @on(Button.Pressed, "#demo")
    def start_demo(self) -> None:
        """Build the tiny demo model and train it in a child process, then watch it (also from the Doctor's D)."""
        self.notify("building a tiny model and its identity data set, then training it...", title="demo")
        nproc = None
        if self.gpu_names == []:  # CPU processes chosen on a box without GPUs: the demo trains on that many
            try:
                nproc = self.launch_choice()[1]
            except ValueError:
                nproc = None
        self._start_demo(nproc)

    @work(thread=True, group="start", exclusive=True)
    def _start_demo(self, nproc: int | None = None) -> None:
        try:
            handle = self.backend.start_demo(nproc=nproc) if nproc and nproc > 1 else self.backend.start_demo()
        except Exception as e:  # noqa: BLE001 - RuntimeError from the child carries its reason
            self.app.call_from_thread(self.notify, str(e), title="cannot start the demo", severity="error", timeout=12)
            return
        self.app.call_from_thread(self.attach, handle)

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Train: start form", "Start a new run (n)", self.action_new_run)
        yield SystemCommand("Train: demo", "Train the tiny local demo model (no GPU or download)",
                            self.start_demo)
        if self.run_dir is not None:
            yield SystemCommand("Train: save checkpoint", "Ask the run to save now (s)",
                                lambda: self.action_control("save"))
            yield SystemCommand("Train: pause", "Pause after the current step (p)", lambda: self.action_control("pause"))
            yield SystemCommand("Train: resume", "Resume a paused run (r)", lambda: self.action_control("resume"))
            yield SystemCommand("Train: stop", "Save and stop, after confirming (x)", self.action_stop)
            yield SystemCommand("Train: run directory", "Show and copy its path (d)", self.action_show_dir)
            yield SystemCommand("Train: export", "Export the adapter when done (e)", self.action_export)


def _escape(s: str) -> str:
    from rich.markup import escape

    return escape(s)
