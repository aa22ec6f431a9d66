"""The Doctor screen: every area fills in as its probes answer; findings with their fixes; apply with confirmation.

Probes run concurrently, one thread worker each; a worker only calls the backend and posts a message. Handlers
update the model (tui.doctor_model) and re-render. Worker failures are handled in one Worker.StateChanged handler.
"""

from __future__ import annotations

import shlex
import threading
from functools import partial
from pathlib import Path
from typing import Iterable

from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, OptionList, RichLog, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerState

from tunedoc.doctor.facts import Facts, ProbeStatus
from tunedoc.doctor.findings import AREA_TITLES, AREAS, Finding, Fix
from tunedoc.tui.backends import BackendError, DoctorBackend, probe_areas
from tunedoc.tui.doctor_model import SPINNER, DoctorModel, apply_changes, copy_facts
from tunedoc.tui.messages import ActionFailed, FixFinished, FixOutput, ProbeFinished, ReportLoaded, ReportSaved
from tunedoc.tui.widgets.area_row import AreaRow
from tunedoc.tui.widgets.dialogs import ConfirmCommands, PathPrompt
from tunedoc.tui.widgets.finding_view import FindingView, finding_label

WIDE = 110  # columns from which findings and details sit side by side
TALL = 34  # rows from which the area list stays visible with details or the log open


class DoctorScreen(Screen):
    CSS_PATH = Path(__file__).with_name("doctor.tcss")
    HELP_TITLE = "Doctor"
    BINDINGS = [
        Binding("R", "rerun_all", "Re-run", key_display="R", tooltip="Re-run every check on this machine"),
        Binding("r", "rerun_area", "Re-run area", show=False,
                tooltip="Re-run the checks of the highlighted finding's area"),
        Binding("c", "cancel", "Cancel", tooltip="Cancel the checks still running (or the running fix)"),
        Binding("v", "toggle_details", "Details", tooltip="Show or hide the highlighted finding's details"),
        Binding("escape", "close_details", "Close details", show=False),
        Binding("y", "copy_fix", "Copy", tooltip="Copy the fix's commands to the clipboard (works over SSH)"),
        Binding("a", "apply_fix", "Apply", tooltip="Apply the fix after showing its exact commands"),
        Binding("l", "toggle_log", "Log", show=False, tooltip="Show or hide the output of applied fixes"),
        Binding("p", "switch_python", "Python", show=False, tooltip="Check another Python interpreter (a venv or conda env)"),
        Binding("s", "save_report", "Save", tooltip="Save a redacted report to share"),
        Binding("o", "open_report", "Open", show=False, tooltip="Diagnose a saved or pasted report instead of this machine"),
        Binding("D", "demo", "Demo", key_display="D", tooltip="No GPU here: train the tiny CPU demo and watch it"),
    ]

    show_details: reactive[bool] = reactive(False)
    show_log: reactive[bool] = reactive(False)

    def __init__(self) -> None:
        super().__init__()
        self.backend: DoctorBackend = self.app.backend("doctor")
        self.python = self.app.target_python or self.backend.default_python()
        self.model = DoctorModel(probe_areas(self.backend))
        self.facts = Facts()
        self._shown: list[Finding] = []
        self._fix_stop: threading.Event | None = None
        self._ticker = None

    # --- layout ------------------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Vertical(id="top"):
            yield Static("", id="summary")
            yield Static("", id="target", markup=False)
        with Vertical(id="areas") as areas:
            areas.border_title = "Areas"
            for area in AREAS:
                yield AreaRow(area, AREA_TITLES.get(area, area), id=f"area-{area}")
        with Container(id="body"):
            findings = OptionList(id="findings")
            findings.border_title = "Findings"
            yield findings
            detail = FindingView(id="detail")
            detail.border_title = "Details"
            yield detail
        log = RichLog(id="log", wrap=True, markup=False, max_lines=2000)
        log.border_title = "Fix output"
        yield log
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self.app.report_paths:
            self._open(list(self.app.report_paths))
        else:
            self.run_probes(self.backend.probe_names(), fresh=True)
        self.query_one("#findings", OptionList).focus()

    def on_unmount(self) -> None:
        # quitting must not wait for a hung probe: kill its child process so its thread returns
        if self.model.running():
            self.backend.cancel()
        if self._fix_stop is not None:
            self._fix_stop.set()

    def on_resize(self) -> None:
        self.set_class(self.size.width >= WIDE, "-wide")
        self.set_class(self.size.height < TALL, "-short")

    def watch_show_details(self, value: bool) -> None:
        self.set_class(value, "-details")
        if value:
            self.call_later(self._show_current)

    def watch_show_log(self, value: bool) -> None:
        self.set_class(value, "-log")

    # --- probes ------------------------------------------------------------------------------------------------
    def run_probes(self, names: list[str], fresh: bool) -> None:
        now = self.app.clock()
        if fresh:
            self.facts = Facts()
        else:
            names = [n for n in names if n not in self.model.running()]
        generation = self.model.start(names, now, fresh)
        for name in names:
            base = copy_facts(self.facts)
            work = partial(self._probe, name, generation, copy_facts(self.facts), base, self.python)
            self.run_worker(work, thread=True, group="probes", name=f"probe:{name}:{generation}",
                            exit_on_error=False)
        if self._ticker is None and names:
            self._ticker = self.set_interval(0.1, self._tick)
        self._refresh_view()

    def _probe(self, name: str, generation: int, facts: Facts, base: Facts, python: str) -> None:
        """In a thread: the probe fills its own copy of the facts; post it. Touches no widget."""
        status = self.backend.run_probe(name, facts, python)
        self.post_message(ProbeFinished(name, status, generation, facts, base))

    def on_probe_finished(self, message: ProbeFinished) -> None:
        if self.model.finish(message.name, message.status, self.app.clock(), message.generation):
            if message.facts is not None and message.base is not None:
                apply_changes(self.facts, message.base, message.facts)
            self.facts.probes[message.name] = message.status
            self._diagnose()

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        """The one place where a worker's failure becomes something the user sees."""
        if event.state != WorkerState.ERROR:
            return
        kind, _, rest = event.worker.name.partition(":")
        error = event.worker.error
        reason = str(error) if isinstance(error, BackendError) else f"{type(error).__name__}: {error}"
        if kind == "probe":
            name, _, generation = rest.rpartition(":")
            status = ProbeStatus(name, ok=False, error=f"the check crashed: {reason}")
            self.post_message(ProbeFinished(name, status, int(generation)))
        elif kind == "fix":
            self._log(f"✗ {reason}")
            self._fix_stop = None
            self.notify(reason, title="Fix not applied", severity="error", timeout=10)
        else:
            self.post_message(ActionFailed(kind, reason))

    def _diagnose(self) -> None:
        try:
            self.model.findings = self.backend.diagnose(self.facts)
            self.model.facts = self.facts
        except Exception as e:  # noqa: BLE001 - a rule bug must not take the screen down with it
            self.notify(f"the doctor's rules failed: {type(e).__name__}: {e}", severity="error", timeout=10)
        self._refresh_view()

    def _tick(self) -> None:
        self._refresh_view()
        if not self.model.running() and self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    # --- rendering ---------------------------------------------------------------------------------------------
    def _refresh_view(self) -> None:
        now = self.app.clock()
        frame = SPINNER[int(now * 10) % len(SPINNER)]
        for view in self.model.area_views(now):
            row = self.query_one(f"#area-{view.area}", AreaRow)
            row.state, row.line = view.state, view.line
            row.icon = frame if view.state == "pending" else view.icon
        text, cls = self.model.summary(self.facts)
        summary = self.query_one("#summary", Static)
        summary.update(text)
        for c in ("pending", "ok", "warning", "error"):
            summary.set_class(c == cls, f"-{c}")
        source = f"report: {', '.join(Path(p).name for p in self.model.report)}" if self.model.report is not None \
            else "this machine"
        self.query_one("#target", Static).update(f"Python {self.python}  ·  {source}")
        self._render_findings()
        self.refresh_bindings()

    def _render_findings(self) -> None:
        findings = self.model.all_findings()
        if [(f.id, f.title, f.severity) for f in findings] == [(f.id, f.title, f.severity) for f in self._shown]:
            self._shown = findings
            return
        option_list = self.query_one("#findings", OptionList)
        current = self.current_finding()
        self._shown = findings
        option_list.clear_options()
        option_list.add_options([Option(finding_label(f), id=str(i)) for i, f in enumerate(findings)])
        # the worst finding comes first; keep the user's place only while they read one
        keep = next((i for i, f in enumerate(findings) if self.show_details and current
                     and (f.id, f.area) == (current.id, current.area)), 0 if findings else None)
        option_list.highlighted = keep
        if self.show_details:
            self.call_later(self._show_current)

    def current_finding(self) -> Finding | None:
        index = self.query_one("#findings", OptionList).highlighted
        return self._shown[index] if index is not None and index < len(self._shown) else None

    async def _show_current(self) -> None:
        detail = self.query_one("#detail", FindingView)
        finding = self.current_finding()
        if finding is not detail.finding:
            await detail.show(finding)
        self.refresh_bindings()

    @on(OptionList.OptionHighlighted, "#findings")
    def _highlighted(self) -> None:
        self.refresh_bindings()
        if self.show_details:
            self.call_later(self._show_current)

    @on(OptionList.OptionSelected, "#findings")
    def _selected(self) -> None:
        self.show_details = True
        self.call_later(self._show_current)

    # --- actions -----------------------------------------------------------------------------------------------
    def action_rerun_all(self) -> None:
        if self.model.running():
            self.backend.cancel()
        self.run_probes(self.backend.probe_names(), fresh=True)

    def action_rerun_area(self, area: str | None = None) -> None:
        finding = self.current_finding()
        area = area or (finding.area if finding else None)
        if self.model.report is not None or area is None:
            self.action_rerun_all()
            return
        self.run_probes(self.model.probes_for(area), fresh=False)
        self.notify(f"Re-checking {AREA_TITLES.get(area, area)}", timeout=3)

    def action_cancel(self) -> None:
        if self._fix_stop is not None:
            self._fix_stop.set()
            return
        if not self.model.running():
            self.notify("Nothing is running", timeout=3)
            return
        self.backend.cancel()
        for name in self.model.cancel_running(self.app.clock()):
            self.facts.probes[name] = self.model.runs[name].status
        self._diagnose()

    def action_toggle_details(self) -> None:
        self.show_details = not self.show_details

    def action_close_details(self) -> None:
        if self.show_log:
            self.show_log = False
        else:
            self.show_details = False
            self.query_one("#findings", OptionList).focus()

    def action_toggle_log(self) -> None:
        self.show_log = not self.show_log

    def _fix(self, applicable: bool) -> tuple[Finding | None, Fix | None]:
        finding = self.current_finding()
        detail = self.query_one("#detail", FindingView)
        if self.show_details and detail.finding is finding and finding is not None:
            return finding, detail.current_fix(applicable)
        fixes = [f for f in (finding.fixes if finding else []) if f.commands and (f.applicable or not applicable)]
        return finding, (fixes[0] if fixes else None)

    def action_copy_fix(self) -> None:
        _, fix = self._fix(applicable=False)
        if fix is None:
            self.notify("This finding has no commands to copy", timeout=3)
            return
        self.app.copy_to_clipboard("\n".join(fix.commands))
        n = len(fix.commands)
        self.notify(f"Copied {n} command{'s' if n > 1 else ''} to the clipboard", timeout=3)

    def action_apply_fix(self) -> None:
        finding, fix = self._fix(applicable=True)
        if finding is None or fix is None:
            self.notify("No fix here that tunedoc can apply: the commands are shown to run yourself", timeout=5)
            return
        self.request_apply(finding, fix)

    def request_apply(self, finding: Finding, fix: Fix) -> None:
        if self._fix_stop is not None:
            self.notify("A fix is already running: wait for it, or c to cancel it", timeout=5)
            return
        areas = ", ".join(AREA_TITLES.get(a, a) for a in self._affected_areas(finding, fix))
        note = f"Runs with {self.python}. Then tunedoc re-checks: {areas}."

        def confirmed(ok: bool | None) -> None:
            if ok:
                self._start_fix(finding, fix)

        self.app.push_screen(ConfirmCommands(f"Apply: {fix.title}", fix.commands, note), confirmed)

    def _start_fix(self, finding: Finding, fix: Fix) -> None:
        self._fix_stop = threading.Event()
        self.show_log = True
        self._log(f"── {fix.title}")
        self.run_worker(partial(self._apply, finding, fix, self.python, self._fix_stop), thread=True,
                        name="fix", group="fix", exit_on_error=False)

    def _apply(self, finding: Finding, fix: Fix, python: str, stop: threading.Event) -> None:
        """In a thread: run the fix, streaming its output as messages."""
        rc = self.backend.apply_fix(fix, python, lambda line: self.post_message(FixOutput(line)), stop)
        self.post_message(FixFinished(finding, fix, rc))

    def on_fix_output(self, message: FixOutput) -> None:
        self._log(message.line)

    def on_fix_finished(self, message: FixFinished) -> None:
        self._fix_stop = None
        if message.returncode != 0:
            self._log(f"✗ failed (exit code {message.returncode}); nothing else was run")
            self.notify(f"The fix failed (exit code {message.returncode}): see the log (l)", severity="error")
            return
        names = sorted({n for a in self._affected_areas(message.finding, message.fix)
                        for n in self.model.probes_for(a)})
        self._log(f"✓ done; re-checking: {', '.join(names)}")
        self.run_probes(names, fresh=False)

    def _affected_areas(self, finding: Finding, fix: Fix) -> list[str]:
        areas = [finding.area]
        if any(" pip " in f" {c} " for c in fix.commands):  # packages changed: torch and bitsandbytes may too
            areas += [a for a in ("torch", "bnb") if a not in areas]
        return areas

    def _log(self, line: str) -> None:
        self.query_one("#log", RichLog).write(line)

    def action_switch_python(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.python = str(Path(path).expanduser())
                self.app.target_python = self.python
                self.run_probes(self.backend.probe_names(), fresh=True)

        self.app.push_screen(PathPrompt("Target Python", "The interpreter you will train with: a venv's "
                                        "bin/python, a conda env's python, or Scripts\\python.exe on Windows.",
                                        self.python, self.backend.check_python), chosen)

    def action_save_report(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self.run_worker(partial(self._save, path), thread=True, name="save", exit_on_error=False)

        self.app.push_screen(PathPrompt("Save a redacted report", "User names, home paths, host names and tokens "
                                        "are removed. Share the file, or open it later with o.",
                                        "tunedoc-report.json"), chosen)

    def _save(self, path: str) -> None:
        self.post_message(ReportSaved(self.backend.save_report(self.facts, self.model.findings, path)))

    def on_report_saved(self, message: ReportSaved) -> None:
        self.notify(f"Saved a redacted report to {message.path}", timeout=6)

    def action_open_report(self) -> None:
        def chosen(value: str | None) -> None:
            if value:
                self._open(shlex.split(value))

        self.app.push_screen(PathPrompt("Open a report", "A file saved with s or `tunedoc doctor --json`, or pasted "
                                        "output: nvidia-smi, collect_env, pip list, a traceback. Several paths: "
                                        "separate them with spaces."), chosen)

    def _open(self, paths: list[str]) -> None:
        self.run_worker(partial(self._load, paths), thread=True, name="open", exit_on_error=False)

    def _load(self, paths: list[str]) -> None:
        self.post_message(ReportLoaded(self.backend.load_report(paths), paths))

    def on_report_loaded(self, message: ReportLoaded) -> None:
        if self.model.running():
            self.backend.cancel()
        self.model.load_report(message.paths)
        self.facts = message.facts
        self._diagnose()

    def on_action_failed(self, message: ActionFailed) -> None:
        what = {"save": "Report not saved", "open": "Report not opened"}.get(message.what, "Failed")
        self.notify(message.message, title=what, severity="error", timeout=10)

    # --- messages up from the widgets --------------------------------------------------------------------------
    def on_fix_card_copy_requested(self, message) -> None:
        self.app.copy_to_clipboard("\n".join(message.fix.commands))
        self.notify("Copied to the clipboard", timeout=3)

    def on_fix_card_apply_requested(self, message) -> None:
        finding = self.query_one("#detail", FindingView).finding
        if finding is not None:
            self.request_apply(finding, message.fix)

    # --- bindings and the command palette ----------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel":
            return bool(self.model.running() or self._fix_stop)
        if action == "demo":  # shown where the summary points to it: this machine has no NVIDIA GPU
            return (self.model.report is None and "train" in {sp.name for sp in self.app.screen_specs}
                    and any(f.id == "no-gpu" for f in self.model.findings))
        if action in ("copy_fix", "apply_fix"):
            return self._fix(applicable=action == "apply_fix")[1] is not None or None
        return True

    async def action_demo(self) -> None:
        await self.app.switch_mode("train")
        self.app.screen.start_demo()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Doctor: re-run all checks", "Probe this machine again (R)", self.action_rerun_all)
        for area in AREAS:
            title = AREA_TITLES.get(area, area)
            yield SystemCommand(f"Doctor: re-run {title}", f"Re-run the checks behind {title}",
                                partial(self.action_rerun_area, area))
        yield SystemCommand("Doctor: cancel running checks", "Stop the checks still running (c)", self.action_cancel)
        yield SystemCommand("Doctor: toggle details", "Show or hide the finding's details (v)",
                            self.action_toggle_details)
        yield SystemCommand("Doctor: copy fix commands", "To the clipboard, over SSH too (y)", self.action_copy_fix)
        yield SystemCommand("Doctor: apply fix", "After showing the exact commands (a)", self.action_apply_fix)
        yield SystemCommand("Doctor: switch target Python", "Check another interpreter (p)", self.action_switch_python)
        yield SystemCommand("Doctor: save redacted report", "Write a report to share (s)", self.action_save_report)
        yield SystemCommand("Doctor: open report", "Diagnose a saved or pasted report (o)", self.action_open_report)
        yield SystemCommand("Doctor: toggle fix log", "Show or hide the output of applied fixes (l)",
                            self.action_toggle_log)
