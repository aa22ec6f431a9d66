"""The run controls the Train and Runs screens share: send save/pause/resume/stop, and confirm a stop first."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from textual.screen import Screen

from tunedoc.tui.widgets.dialogs import ConfirmCommands

ASKED = {"save": "a checkpoint", "pause": "to pause", "resume": "to resume", "stop": "to stop"}


def send_control(screen: Screen, backend, run_dir: Path, action: str) -> bool:
    """Ask the run for `action` through the backend; notify what was asked, or why it could not be."""
    try:
        backend.control(Path(run_dir), action)
    except (RuntimeError, ValueError, OSError) as e:
        screen.notify(str(e), title=f"cannot {action}", severity="error", timeout=8)
        return False
    when = "" if action == "resume" else "; it acts after the current step"
    screen.notify(f"asked {Path(run_dir).name} for {ASKED[action]}{when}", title=action)
    return True


def confirm_stop(screen: Screen, run_id: str, on_yes: Callable[[], None]) -> None:
    """Show the exact command and what stopping does; call `on_yes` only when the user confirms."""
    screen.app.push_screen(ConfirmCommands(
        f"Stop {run_id}?", [f"tunedoc stop {run_id}"],
        "The run saves a checkpoint and its adapter, then exits. `tunedoc train --resume` continues it later."),
        lambda yes: on_yes() if yes else None)
