"""The Textual app: a shell of screens (tui.screens.SCREENS), help, the command palette and the backends.

    app = make_app()                                     # real backends
    app = make_app(doctor_backend=FakeDoctorBackend(...), clock=lambda: 0.0)   # tests
    app.run()

Screens read their backend with `self.app.backend("doctor")` and never construct one, so tests inject fakes here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tunedoc.tui.screens import SCREENS, ScreenSpec


class TunedocApp(App[int]):
    TITLE = "tunedoc"
    CSS_PATH = Path(__file__).with_name("app.tcss")
    BINDINGS = [
        Binding("q", "quit", "Quit", tooltip="Quit tunedoc (running trainings keep running)"),
        Binding("question_mark", "help", "Help", key_display="?", tooltip="Show the keys of this screen"),
    ]

    def __init__(self, backends: dict[str, Any], *, screens: list[ScreenSpec], start: str,
                 target_python: str | None, report_paths: list[str] | None,
                 clock: Callable[[], float]) -> None:
        super().__init__()
        self.backends = backends
        self.screen_specs = screens
        self.start_screen = start
        self.target_python = target_python
        self.report_paths = report_paths
        self.clock = clock
        for spec in screens:
            self.add_mode(spec.name, self._factory(spec))
            self.bind(spec.key, f"switch_screen_mode('{spec.name}')", description=spec.title, show=False)

    @staticmethod
    def _factory(spec: ScreenSpec) -> Callable[[], Screen]:
        return lambda: spec.load()()

    def backend(self, name: str) -> Any:
        try:
            return self.backends[name]
        except KeyError:
            raise LookupError(f"no {name!r} backend: pass {name}_backend= to make_app()") from None

    def on_mount(self) -> None:
        self.switch_mode(self.start_screen)

    def action_switch_screen_mode(self, name: str) -> None:
        if self.current_mode != name:
            self.switch_mode(name)

    def action_help(self) -> None:
        from tunedoc.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # the active screen's actions first: every screen action is in the palette
        commands = getattr(screen, "palette_commands", None)
        if commands is not None:
            yield from commands()
        for spec in self.screen_specs:
            yield SystemCommand(f"Go to {spec.title}", f"Switch to the {spec.title} screen (key {spec.key})",
                                lambda name=spec.name: self.action_switch_screen_mode(name))
        yield SystemCommand("Help", "Show the keys of this screen (?)", self.action_help)
        yield from super().get_system_commands(screen)


def make_app(
    doctor_backend: Any = None,
    *,
    target_python: str | None = None,
    report_paths: list[str] | None = None,
    start: str = "doctor",
    screens: list[ScreenSpec] | None = None,
    clock: Callable[[], float] | None = None,
    **backends: Any,
) -> TunedocApp:
    """Build the app. Backends default to the real ones; pass fakes in tests (other screens' backends go in
    `**backends` as `<name>_backend=`). `clock` drives spinners and elapsed times (freeze it for snapshots);
    `report_paths` opens the Doctor on pasted reports instead of probing this machine."""
    if doctor_backend is None:
        from tunedoc.tui.backends import RealDoctorBackend

        doctor_backend = RealDoctorBackend()
    all_backends = {"doctor": doctor_backend}
    for key, value in backends.items():
        all_backends[key.removesuffix("_backend")] = value
    specs = list(screens if screens is not None else SCREENS)
    if start not in {s.name for s in specs}:
        raise ValueError(f"unknown start screen {start!r}; choose from: {', '.join(s.name for s in specs)}")
    return TunedocApp(all_backends, screens=specs, start=start, target_python=target_python,
                      report_paths=report_paths, clock=clock or time.monotonic)
