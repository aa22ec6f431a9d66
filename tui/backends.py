"""What the TUI's screens call to do real work, behind small protocols so tests can inject fakes.

    backend = RealDoctorBackend()          # the headless doctor (doctor.run, doctor.reports, doctor.redact)
    backend = FakeDoctorBackend(probes={...}, findings=[...])   # scripted, for pilot and snapshot tests

Every blocking method is called from a thread worker, never from the event loop. Nothing here imports textual,
torch, transformers or bitsandbytes: the doctor's heavy checks run in its own child processes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from tunedoc.doctor.facts import Facts, ProbeStatus
from tunedoc.doctor.findings import AREAS, Finding, Fix


class BackendError(Exception):
    """A failure to show the user as is: one sentence that names the thing and the fix."""


class DoctorBackend(Protocol):
    def probe_names(self) -> list[str]: ...

    def areas_of(self, probe: str) -> list[str]: ...

    def default_python(self) -> str: ...

    def check_python(self, path: str) -> str | None:
        """None when `path` is a usable interpreter, else why not."""

    def run_probe(self, name: str, facts: Facts, python: str) -> ProbeStatus:
        """Blocking (call in a thread). Fills `facts` in place. Never raises."""

    def cancel(self) -> None:
        """Kill the child processes of the probes still running (they then report a failure)."""

    def diagnose(self, facts: Facts) -> list[Finding]: ...

    def load_report(self, paths: list[str]) -> Facts:
        """Facts from pasted reports (--from). Raises BackendError."""

    def save_report(self, facts: Facts, findings: list[Finding], path: str) -> Path:
        """Write a redacted report. Raises BackendError; never writes an unredacted one."""

    def apply_fix(self, fix: Fix, python: str, on_line: Callable[[str], None], stop: threading.Event) -> int:
        """Blocking (call in a thread). Runs the fix's commands, streaming output lines. Returns the exit code."""


def probe_areas(backend: DoctorBackend) -> dict[str, list[str]]:
    return {name: backend.areas_of(name) for name in backend.probe_names()}


# --- applying fixes (shared by the real backend; the fake only records) ----------------------------------------

_ENV_PATTERNS = [
    re.compile(r"^export\s+([A-Za-z_][A-Za-z0-9_]*)=(.*)$"),  # bash
    re.compile(r"^\$env:([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$"),  # powershell
    re.compile(r"^set\s+([A-Za-z_][A-Za-z0-9_]*)=(.*)$"),  # cmd
]


def parse_env_command(command: str) -> tuple[str, str] | None:
    """`export NAME=value` / `$env:NAME = "value"` / `set NAME=value` -> (NAME, value), else None."""
    for pattern in _ENV_PATTERNS:
        m = pattern.match(command.strip())
        if m:
            value = m.group(2).strip()
            try:
                parts = shlex.split(value)
                value = parts[0] if len(parts) == 1 else value
            except ValueError:
                pass
            return m.group(1), value
    return None


def command_argv(command: str, python: str) -> list[str]:
    """The argument list of a fix command, which must be `<target python> -m pip ...`. Raises BackendError."""
    text = command.strip()
    if text.startswith("& "):  # PowerShell call operator before a quoted path
        text = text[2:]
    try:
        argv = shlex.split(text, posix=os.name != "nt")
    except ValueError as e:
        raise BackendError(f"cannot parse {command!r}: {e}") from None
    argv = [a[1:-1] if len(a) > 1 and a[0] == a[-1] == '"' else a for a in argv]
    if len(argv) < 3 or argv[1:3] != ["-m", "pip"]:
        raise BackendError(f"tunedoc only applies `python -m pip ...` and environment variables; run {command!r} "
                           f"yourself in a terminal")
    exe = argv[0]
    same = os.path.abspath(exe) == os.path.abspath(python) or exe in ("python", "python3")
    if not same:
        raise BackendError(f"{command!r} targets {exe}, not the selected Python {python}; switch the target "
                           f"Python (p) or run it yourself")
    return [python, *argv[1:]]


def run_fix_commands(fix: Fix, python: str, on_line: Callable[[str], None], stop: threading.Event,
                     timeout: float = 1800.0) -> int:
    """Run an applicable fix: pip commands as child processes (argument lists, no shell, a timeout), environment
    variables set in this process so the re-run probes' children inherit them. Stops at the first failure."""
    if not fix.applicable:
        raise BackendError(f"{fix.title!r} changes the system (driver, reboot, settings): run it yourself")
    plans = []
    for command in fix.commands:  # check every command before running any
        env = parse_env_command(command)
        plans.append((command, env, None if env else command_argv(command, python)))
    for command, env, argv in plans:
        on_line(f"$ {command}")
        if env:
            os.environ[env[0]] = env[1]
            on_line(f"{env[0]}={env[1]} is set for the checks tunedoc runs now. To keep it, add the line above to "
                    f"your shell profile (~/.bashrc, or your PowerShell $PROFILE).")
            continue
        rc = _stream(argv, on_line, stop, timeout)
        if rc != 0:
            on_line(f"exit code {rc}: stopped here")
            return rc
    return 0


def _stream(argv: list[str], on_line: Callable[[str], None], stop: threading.Event, timeout: float) -> int:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PIP_NO_INPUT": "1", "PIP_PROGRESS_BAR": "off"}
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=env, text=True, encoding="utf-8", errors="replace", bufsize=1)
    except OSError as e:
        on_line(f"could not start {argv[0]}: {e}")
        return 127
    deadline = time.monotonic() + timeout

    def watchdog() -> None:
        while proc.poll() is None:
            if stop.is_set() or time.monotonic() > deadline:
                on_line("cancelled" if stop.is_set() else f"timed out after {timeout:.0f} s")
                proc.kill()
                return
            time.sleep(0.1)

    threading.Thread(target=watchdog, daemon=True).start()
    assert proc.stdout is not None
    for line in proc.stdout:
        on_line(line.rstrip("\n"))
    return proc.wait()


def report_document(facts: Facts, findings: list[Finding]) -> dict:
    """The shape of `tunedoc doctor --json` / `--save` (the fake backend writes it unredacted)."""
    from tunedoc import __version__

    return {"version": __version__, "facts": facts.to_dict(), "findings": [f.to_dict() for f in findings]}


# --- the real doctor ---------------------------------------------------------------------------------------------


class RealDoctorBackend:
    """The headless doctor, imported lazily so the app paints before any doctor module loads."""

    def _run(self):
        try:
            import tunedoc.doctor.run as run
        except ImportError as e:
            raise BackendError(f"the doctor runner (doctor.run) is not available: {e}") from None
        return run

    def probe_names(self) -> list[str]:
        try:
            return list(self._run().PROBES)
        except BackendError:
            return []

    def areas_of(self, probe: str) -> list[str]:
        return list(self._run().PROBE_AREAS.get(probe, []))

    def default_python(self) -> str:
        return sys.executable

    def check_python(self, path: str) -> str | None:
        return check_python_path(path)

    def run_probe(self, name: str, facts: Facts, python: str) -> ProbeStatus:
        try:
            run = self._run()
        except BackendError as e:
            return ProbeStatus(name, ok=False, error=str(e))
        return run.run_probe(name, facts, python=python)

    def cancel(self) -> None:
        try:
            self._run().cancel()
        except BackendError:
            pass

    def diagnose(self, facts: Facts) -> list[Finding]:
        return self._run().diagnose(facts)

    def load_report(self, paths: list[str]) -> Facts:
        missing = [p for p in paths if not Path(p).expanduser().is_file()]
        if missing:
            raise BackendError(f"no such file: {missing[0]} (give the path of a saved report or pasted output)")
        try:
            from tunedoc.doctor.reports import parse_files
        except ImportError:
            raise BackendError("reading reports needs doctor.reports.parse_files, which this install lacks") from None
        try:
            return parse_files([str(Path(p).expanduser()) for p in paths])
        except Exception as e:  # ReportError(message), or a parser bug: either way the user sees why
            raise BackendError(f"could not read {', '.join(paths)}: {e}") from None

    def save_report(self, facts: Facts, findings: list[Finding], path: str) -> Path:
        """The same file as `tunedoc doctor --save`: facts and findings, redacted, written atomically."""
        try:
            from tunedoc.doctor.cli import save, to_payload
        except ImportError as e:
            raise BackendError(f"cannot save: {e}; tunedoc never writes an unredacted report") from None
        out = Path(path).expanduser()
        if out.is_dir():
            out = out / "tunedoc-report.json"
        try:
            save(to_payload(facts, findings), str(out))
        except OSError as e:
            raise BackendError(f"cannot write {out}: {e.strerror or e}; choose a writable path") from None
        return out

    def apply_fix(self, fix: Fix, python: str, on_line: Callable[[str], None], stop: threading.Event) -> int:
        return run_fix_commands(fix, python, on_line, stop)


def check_python_path(path: str) -> str | None:
    p = Path(path).expanduser()
    if not path.strip():
        return "give the path of a Python interpreter, e.g. ~/venv/bin/python"
    if not p.exists():
        return f"no such file: {path}"
    if p.is_dir():
        return f"{path} is a directory: give the interpreter inside it (bin/python, or Scripts\\python.exe)"
    if not os.access(p, os.X_OK):
        return f"{path} is not executable"
    return None


def write_report(facts: Facts, findings: list[Finding], path: str) -> Path:
    out = Path(path).expanduser()
    if out.is_dir():
        out = out / "tunedoc-report.json"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(report_document(facts, findings), indent=2) + "\n", encoding="utf-8")
        tmp.replace(out)
    except OSError as e:
        raise BackendError(f"cannot write {out}: {e.strerror or e}") from None
    return out


# --- a scripted doctor for tests -------------------------------------------------------------------------------


@dataclass
class FakeProbe:
    """One scripted probe: what it fills in, how long it takes, and how it ends."""

    areas: list[str]
    fill: Callable[[Facts], None] | None = None
    delay: float = 0.0
    hold: bool = False  # wait until `FakeDoctorBackend.release(name)` or cancel()
    status: ProbeStatus | None = None  # default: ok
    raises: Exception | None = None  # a probe bug, to test the worker-failure path


@dataclass
class FakeDoctorBackend:
    """Scripted probes and findings. A finding shows once every probe of its area has answered successfully, as
    real rules fire only on known facts. Records what the app asked for."""

    probes: dict[str, FakeProbe] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    report: Facts | None = None
    report_findings: list[Finding] | None = None
    fix_output: list[str] = field(default_factory=lambda: ["Collecting bitsandbytes", "Successfully installed"])
    fix_returncode: int = 0
    after_fix: list[Finding] | None = None  # findings once a fix was applied
    python: str = "/usr/bin/python3"
    ran: list[tuple[str, str]] = field(default_factory=list)  # (probe, python)
    applied: list[Fix] = field(default_factory=list)
    saved: list[str] = field(default_factory=list)
    cancelled: int = 0

    def __post_init__(self) -> None:
        self._events = {name: threading.Event() for name in self.probes}
        self._lock = threading.Lock()

    def release(self, name: str) -> None:
        self._events[name].set()

    def probe_names(self) -> list[str]:
        return list(self.probes)

    def areas_of(self, probe: str) -> list[str]:
        return list(self.probes[probe].areas)

    def default_python(self) -> str:
        return self.python

    def check_python(self, path: str) -> str | None:
        return None if path.startswith("/") and "missing" not in path else f"no such file: {path}"

    def run_probe(self, name: str, facts: Facts, python: str) -> ProbeStatus:
        spec = self.probes[name]
        with self._lock:
            self.ran.append((name, python))
        if spec.delay:
            time.sleep(spec.delay)
        if spec.hold:
            self._events[name].wait(timeout=30)
            self._events[name].clear()
        if spec.raises:
            raise spec.raises
        if spec.fill:
            spec.fill(facts)
        status = spec.status or ProbeStatus(name)
        with self._lock:
            facts.probes[name] = status
        return status

    def cancel(self) -> None:
        self.cancelled += 1
        for e in self._events.values():
            e.set()

    def diagnose(self, facts: Facts) -> list[Finding]:
        if facts.origin == "report":
            return list(self.report_findings or [])
        pool = self.after_fix if self.applied and self.after_fix is not None else self.findings
        answered = {name for name, status in facts.probes.items() if status.ok}  # a failed probe knows nothing
        ready = {a for a in AREAS if all(n in answered for n, p in self.probes.items() if a in p.areas)}
        return [f for f in pool if f.area in ready]

    def load_report(self, paths: list[str]) -> Facts:
        if self.report is None or any("missing" in p for p in paths):
            raise BackendError(f"no such file: {paths[0]}")
        return self.report

    def save_report(self, facts: Facts, findings: list[Finding], path: str) -> Path:
        self.saved.append(path)
        return write_report(facts, findings, path)

    def apply_fix(self, fix: Fix, python: str, on_line: Callable[[str], None], stop: threading.Event) -> int:
        self.applied.append(fix)
        for command in fix.commands:
            on_line(f"$ {command}")
        for line in self.fix_output:
            on_line(line)
        return self.fix_returncode
