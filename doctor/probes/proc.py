"""Subprocesses for probes: argument lists (never a shell), a timeout, the whole process tree killed on timeout,
and the reason kept (exit code, stderr tail, timed out). Never raises for a failing command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass

_live: set[subprocess.Popen] = set()
_cancelled: set[int] = set()  # pids killed by cancel_all()
_lock = threading.Lock()


@dataclass
class Result:
    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    error: str | None = None  # could not start: not found, permission
    cancelled: bool = False  # killed by cancel_all() (the user stopped the probes), not by a crash or timeout

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self.stderr.strip().splitlines()[-15:])


def run_command(argv: list[str], timeout: float = 30, env: dict | None = None) -> Result:
    kwargs: dict = {}
    if sys.platform == "win32":
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
    else:
        kwargs["start_new_session"] = True
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, **kwargs)
    except FileNotFoundError:
        return Result(None, error=f"{argv[0]} not found")
    except OSError as e:
        return Result(None, error=f"{argv[0]} could not start: {e}")
    with _lock:
        _live.add(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
        return Result(proc.returncode, _dec(out), _dec(err), cancelled=_was_cancelled(proc))
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a grandchild that left the process group still holds the pipes
            proc.kill()
            out, err = b"", b""
        cancelled = _was_cancelled(proc)
        return Result(proc.returncode, _dec(out), _dec(err), timed_out=not cancelled, cancelled=cancelled)
    finally:
        with _lock:
            _live.discard(proc)


def kill_tree(proc: subprocess.Popen) -> None:
    try:
        if sys.platform == "win32":
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True, timeout=10)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
    except Exception:
        try:
            proc.kill()
        except Exception:
            pass


def cancel_all() -> None:
    """Kill every probe child still running (the TUI's cancel)."""
    with _lock:
        procs = list(_live)
        _cancelled.update(p.pid for p in procs)
    for p in procs:
        kill_tree(p)


def _was_cancelled(proc: subprocess.Popen) -> bool:
    with _lock:
        if proc.pid in _cancelled:
            _cancelled.discard(proc.pid)
            return True
    return False


def _dec(b: bytes | None) -> str:
    return (b or b"").decode("utf-8", "replace")
