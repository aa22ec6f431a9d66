"""Steering a running trainer through files: `runs/<id>/control/<action>`.

Any process (the TUI, `tunedoc stop`, a shell: `touch runs/<id>/control/stop`) asks by creating a file; the trainer
checks between optimizer steps, acts, and deletes the file. Files work the same on Linux, macOS and Windows, over
SSH, and need no open socket. Requests are written atomically (temp file + rename) so the trainer never sees a
half-made one. No torch here: the TUI imports this.

Actions:
  save    write a checkpoint now and keep training
  pause   finish the current step, save nothing, and wait (status "paused") until `resume` or `stop`
  resume  continue a paused run
  stop    save a checkpoint and the adapter, then exit with status "stopped"

During a run's closing eval (config.json's final_eval, after the last step) pause and resume act the same between
the eval's batches; stop (or a signal) ends the eval unfinished (EvalStopped) and the run still completes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ACTIONS = ("save", "pause", "resume", "stop")


class EvalStopped(Exception):
    """A stop request or a signal during the closing eval: the eval ends unfinished, the run ends completed."""

CONTROL_DIR = "control"


def request(run_dir: str | os.PathLike, action: str) -> Path:
    """Create the control file for `action`; returns its path. Raises ValueError for an unknown action."""
    if action not in ACTIONS:
        raise ValueError(f"unknown control action {action!r}; valid: {', '.join(ACTIONS)}")
    d = Path(run_dir) / CONTROL_DIR
    d.mkdir(parents=True, exist_ok=True)
    target = d / action
    tmp = d / f".{action}.{os.getpid()}.tmp"
    tmp.write_text(f"{time.time()}\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def pending(run_dir: str | os.PathLike) -> list[str]:
    """Requested actions, oldest first, without consuming them."""
    d = Path(run_dir) / CONTROL_DIR
    found = []
    for action in ACTIONS:
        p = d / action
        try:
            found.append((p.stat().st_mtime, ACTIONS.index(action), action))
        except FileNotFoundError:
            continue
    return [a for _, _, a in sorted(found)]


def take(run_dir: str | os.PathLike) -> list[str]:
    """Requested actions, oldest first, consumed (their files deleted). Used by the trainer between steps."""
    actions = pending(run_dir)
    d = Path(run_dir) / CONTROL_DIR
    for action in actions:
        try:
            (d / action).unlink()
        except FileNotFoundError:
            pass
    return actions


def clear(run_dir: str | os.PathLike) -> None:
    """Forget stale requests (a new or resumed run starts clean)."""
    take(run_dir)
