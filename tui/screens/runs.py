"""The Runs screen: every run in the runs directory (status, model, profile, steps, last loss, duration, peak
memory), attach to one (the Train screen's live view with its whole history), and compare two or more: loss
curves overlaid and `tunedoc compare`'s table (trainer/compare.py's rows: final train and eval loss, BLEU-4 and
ROUGE-L of the newest full eval, time, peak memory, tokens/s, method; the best value per column in bold green, and
the base model's row when an eval ran with --base or the run ended with a closing eval). `e` evaluates the
highlighted finished run (`tunedoc eval RUN --base` as a child process: this process never imports torch), `v` shows
its newest eval's examples side by side.

The list refreshes from a thread worker that re-arms only after it finished; a run whose process died reads as
failed with its last error (trainer.rundir.run_status)."""

from __future__ import annotations

from tunedoc.child import tunedoc_argv

import subprocess
import sys
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tunedoc.trainer.compare import cell, compare_rows, eval_dirs
from tunedoc.trainer.events import score_change
from tunedoc.tui.run_controls import confirm_stop, send_control
from tunedoc.tui.run_model import duration
from tunedoc.tui.train_backend import TrainBackend
from tunedoc.tui.widgets.loss_chart import LossChart
from tunedoc.tui.widgets.run_panels import STATE_STYLE

REFRESH_S = 2.0
# the comparison's columns: (compare row key, heading), most telling first (at 80 columns the last ones scroll)
COMPARE_COLUMNS = [("run", "run"), ("train_loss", "loss"), ("eval_loss", "eval loss"), ("bleu4", "BLEU-4"),
                   ("rougeL", "ROUGE-L"), ("time_s", "time"), ("peak_mem_mb", "peak mem"), ("tokens_per_s", "tok/s"),
                   ("method", "method")]


class RunsScreen(Screen):
    CSS_PATH = Path(__file__).with_name("runs.tcss")
    HELP_TITLE = "Runs"
    BINDINGS = [
        Binding("enter", "attach", "Attach", tooltip="Open the run live on the Train screen, with its history"),
        Binding("space", "mark", "Mark", tooltip="Mark the run for comparison"),
        Binding("c", "compare", "Compare", tooltip="Compare the marked runs (or close the comparison)"),
        Binding("escape", "close_compare", "Close", show=False),
        Binding("p", "control('pause')", "Pause", tooltip="Pause the highlighted run after its current step"),
        Binding("r", "control('resume')", "Resume", tooltip="Resume the highlighted paused run"),
        Binding("x", "stop", "Stop", tooltip="Save and stop the highlighted run (asks first)"),
        Binding("e", "evaluate", "Eval", tooltip="Score the highlighted finished run on held-out examples, "
                "base vs tuned (tunedoc eval RUN --base)"),
        Binding("v", "view_eval", "Answers", tooltip="The newest eval's examples side by side, searchable"),
        Binding("R", "refresh", "Refresh", key_display="R", tooltip="Read the runs directory again"),
    ]

    def __init__(self) -> None:
        super().__init__()
        try:
            self.backend: TrainBackend = self.app.backend("train")
        except LookupError:
            self.backend = TrainBackend()
        self.infos: list = []
        self.marked: list[str] = []  # run ids, in the order marked
        self._compared: list = []  # the runs the open comparison shows
        self._poll = None  # the one pending refresh timer (R and controls refresh early without adding polls)

    def compose(self) -> ComposeResult:
        yield Static("", id="runs-title", markup=False)
        table = DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        table.border_title = "runs"
        yield table
        with Vertical(id="compare"):
            yield LossChart("loss", id="compare-chart")
            yield DataTable(id="compare-table", cursor_type="none")
        yield Static("", id="error", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        t = self.query_one("#runs", DataTable)
        for label, key in (("", "mark"), ("run", "run"), ("status", "status"), ("model", "model"),
                           ("profile", "profile"), ("steps", "steps"), ("loss", "loss"), ("time", "time"),
                           ("peak mem", "mem")):
            t.add_column(label, key=key)
        ct = self.query_one("#compare-table", DataTable)
        for key, label in COMPARE_COLUMNS:
            ct.add_column(label, key=key)
        self.query_one("#compare").border_title = "comparison"
        self.query_one("#compare").display = False
        self._load()

    @work(thread=True, group="runs", exclusive=True)
    def _load(self) -> None:
        try:
            infos = self.backend.runs()
        except OSError as e:
            infos, error = [], f"cannot read {self.backend.runs_dir}: {e}"
        else:
            error = None
        self.app.call_from_thread(self._show, infos, error)

    def _show(self, infos: list, error: str | None) -> None:
        self.infos = infos
        self.query_one("#runs-title", Static).update(
            f" {len(infos)} run(s) in {self.backend.runs_dir}")
        t = self.query_one("#runs", DataTable)
        row = t.cursor_row
        t.clear()
        for r in infos:
            mem = f"{r.peak_mem_mb:,.0f} MB" + (" RSS" if r.mem_kind == "rss" else "") if r.peak_mem_mb else "-"
            steps = f"{r.step}/{r.total_steps}" if r.total_steps else str(r.step)
            t.add_row("●" if r.run_id in self.marked else " ", r.run_id,
                      Text(r.shown_status(), STATE_STYLE.get(r.shown_status(), "")), Path(r.model).name,
                      r.profile + (f" ×{r.world_size}" if r.world_size > 1 else ""), steps,
                      f"{r.loss:.4f}" if r.loss is not None else "-", duration(r.duration_s), mem, key=r.run_id)
        if infos:
            t.move_cursor(row=min(row, len(infos) - 1))
        err = self.query_one("#error", Static)
        if error is None and not infos:
            error = (f"no runs in {self.backend.runs_dir}: start one on the Train screen (4), or `tunedoc demo`")
        self._show_selected_error(error)
        self._refresh_in(REFRESH_S)  # re-arm after this refresh is shown: polls never overlap

    def _refresh_in(self, seconds: float) -> None:
        if self._poll is not None:
            self._poll.stop()
        self._poll = self.set_timer(seconds, self._load)

    def _show_selected_error(self, fallback: str | None = None) -> None:
        err = self.query_one("#error", Static)
        info = self.selected()
        text = f"{info.run_id}: {info.error}" if info is not None and info.error else fallback
        err.update(text or "")
        err.display = bool(text)

    @on(DataTable.RowHighlighted, "#runs")
    def _highlighted(self) -> None:
        self._show_selected_error()

    def selected(self):
        t = self.query_one("#runs", DataTable)
        if not self.infos or t.cursor_row is None or t.cursor_row >= len(self.infos):
            return None
        return self.infos[t.cursor_row]

    async def action_attach(self) -> None:
        info = self.selected()
        if info is None:
            return
        if "train" not in {s.name for s in self.app.screen_specs}:
            self.notify(f"tunedoc watch {info.run_id}", title="no Train screen in this app")
            return
        await self.app.switch_mode("train")
        self.app.screen.attach(Path(info.run_dir))

    @on(DataTable.RowSelected, "#runs")
    async def _selected(self) -> None:
        await self.action_attach()

    def action_control(self, action: str) -> None:
        info = self.selected()
        if info is not None and send_control(self, self.backend, Path(info.run_dir), action):
            self._refresh_in(1.0)

    def action_stop(self) -> None:
        info = self.selected()
        if info is None:
            return
        if info.status not in ("starting", "running", "paused"):
            self.action_control("stop")  # says why not
            return
        confirm_stop(self, info.run_id, lambda: self.action_control("stop"))

    def action_mark(self) -> None:
        info = self.selected()
        if info is None:
            return
        if info.run_id in self.marked:
            self.marked.remove(info.run_id)
        else:
            self.marked.append(info.run_id)
        t = self.query_one("#runs", DataTable)
        t.update_cell(info.run_id, "mark", "●" if info.run_id in self.marked else " ")

    def action_compare(self) -> None:
        box = self.query_one("#compare")
        if box.display:
            box.display = False
            return
        ids = self.marked or ([] if self.selected() is None else [self.selected().run_id])
        by_id = {i.run_id: i for i in self.infos}
        runs = [by_id[r] for r in ids if r in by_id]  # in the order marked
        if len(runs) < 2:
            self.notify("mark two or more runs with space, then press c", title="compare")
            return
        self._compare(runs)

    @work(thread=True, group="compare", exclusive=True)
    def _compare(self, runs: list) -> None:
        self._compared = runs
        rows = compare_rows([Path(r.run_dir) for r in runs])  # the same rows as `tunedoc compare`
        self.app.call_from_thread(self._show_compare, runs, rows)

    def _show_compare(self, runs: list, rows: list[dict]) -> None:
        ranks = {r.run_id: r.world_size for r in runs}
        self.query_one("#compare-chart", LossChart).set_series(
            [(row["run"], row["curve"]) for row in rows if row["run_dir"] is not None])
        ct = self.query_one("#compare-table", DataTable)
        ct.clear()
        for row in rows:
            cells = []
            for key, _ in COMPARE_COLUMNS:
                text = cell(row, key)
                if key == "run":
                    text = "base (no adapter)" if row["run_dir"] is None else (
                        text + (f" ×{ranks[text]}" if ranks.get(text, 1) > 1 else ""))
                elif key == "peak_mem_mb" and text.endswith(" RSS"):
                    text = text[:-4] + "*"  # a CPU run's process memory (the note under the table says so)
                cells.append(Text(text, "bold green") if key in row["best"] else text)
            ct.add_row(*cells)
        box = self.query_one("#compare")
        box.border_subtitle = "bold: best in its column" + (
            "  ·  *: CPU run, process memory (RSS)" if any(r.get("mem_kind") == "rss" for r in rows) else "")
        box.display = True
        t = self.query_one("#runs", DataTable)  # the runs table just shrank: keep the highlighted run in view
        t.call_after_refresh(lambda: t.move_cursor(row=t.cursor_row, scroll=True))

    def action_evaluate(self) -> None:
        info = self.selected()
        if info is None:
            return
        if info.status not in ("completed", "stopped"):
            self.notify(f"{info.run_id} is {info.status}: evaluate a finished run, or from a shell "
                        f"`tunedoc eval {info.run_id}` (reads its latest checkpoint)", title="eval")
            return
        python = getattr(self.backend, "python", None) or sys.executable
        argv = tunedoc_argv(python=python) + ["eval", str(info.run_dir), "--base", "--json"]
        self.notify(f"evaluating {info.run_id}: base vs tuned on its held-out examples...", title="eval")
        self._evaluate(info.run_id, argv)

    @work(thread=True, group="eval", exclusive=True)
    def _evaluate(self, run_id: str, argv: list[str]) -> None:
        import json

        try:  # a child process: the screen never imports torch
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
            ok, out, err = proc.returncode == 0, proc.stdout, proc.stderr.strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            ok, out, err = False, "", str(e)
        if ok:
            try:
                res = json.loads(out.strip().splitlines()[-1])
                msg = (f"base -> tuned: {score_change(res.get('base'), res.get('tuned'))} on {res.get('n')} "
                       "examples; v shows them")
            except (ValueError, IndexError, AttributeError):
                msg = "done; v shows the examples"
        else:
            msg = "\n".join(err.splitlines()[-4:]) or "failed"
        self.app.call_from_thread(self.notify, msg, title=f"eval of {run_id}" + ("" if ok else " failed"),
                                  severity="information" if ok else "error", timeout=20)
        if ok and self.query_one("#compare").display and self._compared:
            self.app.call_from_thread(self._compare, self._compared)  # the open comparison shows the new scores

    def action_view_eval(self) -> None:
        info = self.selected()
        if info is None:
            return
        dirs = eval_dirs(Path(info.run_dir))
        if not dirs:
            self.notify(f"{info.run_id} has no eval yet: press e to run one", title="examples")
            return
        from tunedoc.tui.screens.eval_view import EvalView

        self.app.push_screen(EvalView(dirs[-1]))

    def action_close_compare(self) -> None:
        self.query_one("#compare").display = False

    def action_refresh(self) -> None:
        self._load()

    def palette_commands(self):
        yield SystemCommand("Runs: attach", "Open the highlighted run live (enter)", self.action_attach)
        yield SystemCommand("Runs: compare", "Compare the marked runs (c)", self.action_compare)
        yield SystemCommand("Runs: pause", "Pause the highlighted run (p)", lambda: self.action_control("pause"))
        yield SystemCommand("Runs: resume", "Resume the highlighted paused run (r)",
                            lambda: self.action_control("resume"))
        yield SystemCommand("Runs: eval", "Score the highlighted run, base vs tuned (e)", self.action_evaluate)
        yield SystemCommand("Runs: eval examples", "The newest eval's examples side by side (v)",
                            self.action_view_eval)
        yield SystemCommand("Runs: stop", "Save and stop the highlighted run, after confirming (x)", self.action_stop)
