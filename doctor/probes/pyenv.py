"""Probes of the *target* Python (maybe another venv or conda env): its packages, then torch and bitsandbytes,
each in a child process of that interpreter with a timeout. A torch that segfaults, hangs or cannot load a DLL
becomes facts with the reason, never a crash or a hang here."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from tunedoc.doctor.facts import Facts, ProbeStatus
from tunedoc.doctor.probes.proc import run_command

CHILD = Path(__file__).resolve().parent.parent / "child"


def probe_python(facts: Facts, python: str, timeout: float = 20) -> ProbeStatus:
    res = run_command([python, str(CHILD / "pyenv_probe.py")], timeout=timeout)
    st = ProbeStatus("python", exit_code=res.returncode, timed_out=res.timed_out)
    facts.python.executable = python
    if res.cancelled:
        st.ok, st.error = False, "cancelled before it answered"
        return st
    if res.error:
        st.ok, st.error = False, f"cannot run the target Python {python}: {res.error}"
        return st
    try:
        data = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        st.ok = False
        st.error = "the target Python did not answer" + (" in time" if res.timed_out else "")
        st.stderr_tail = res.stderr_tail
        return st
    p = facts.python
    p.executable = data.get("executable") or python
    p.version, p.prefix = data.get("version"), data.get("prefix")
    p.is_venv, p.is_conda = data.get("is_venv"), data.get("is_conda")
    p.packages = data.get("packages") or {}
    p.package_locations = data.get("package_locations") or {}
    p.pip_available = "pip" in p.packages
    pip_python = data.get("pip_python")
    if pip_python:
        p.pip_python = pip_python
    facts.torch.installed = "torch" in p.packages
    facts.bnb.installed = "bitsandbytes" in p.packages
    return st


def probe_torch_bnb(facts: Facts, python: str, timeout: float = 60) -> tuple[ProbeStatus, ProbeStatus]:
    """One child imports torch once and answers for torch, then bitsandbytes (one JSON line each)."""
    res = run_command([python, str(CHILD / "torch_probe.py"), "torch", "bnb"], timeout=timeout)
    parts = {}
    for line in res.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
                parts[obj.get("part")] = obj
            except ValueError:
                pass
    ts = ProbeStatus("torch", exit_code=res.returncode, timed_out=res.timed_out, stderr_tail=res.stderr_tail or None)
    bs = ProbeStatus("bnb", exit_code=res.returncode, timed_out=res.timed_out, stderr_tail=res.stderr_tail or None)
    t, b = facts.torch, facts.bnb
    if res.cancelled:  # the user stopped it: nothing is known, and nothing is claimed
        ts.ok = bs.ok = False
        ts.error = bs.error = "cancelled before it answered"
        ts.timed_out = bs.timed_out = False
        return ts, bs
    if res.error:
        ts.ok = bs.ok = False
        ts.error = bs.error = f"cannot run the target Python {python}: {res.error}"
        return ts, bs
    crash = _crash_reason(res)
    if "torch" in parts:
        _fill(t, parts["torch"], skip=("part", "traceback"))
        tb = parts["torch"].get("traceback")
        if tb and t.import_error and not t.import_error_kind:
            t.import_error_kind = "other"
        if t.import_error and _is_dll_error(t.import_error + "\n" + (tb or "")):
            t.import_error_kind = "dll"
    else:
        # the child died before it could answer: torch crashed or hung on import
        t.installed = True if t.installed is None else t.installed
        t.import_ok = False
        t.import_error_kind = "timeout" if res.timed_out else "segfault" if (res.returncode or 0) < 0 else "other"
        lines = res.stderr_tail.splitlines()
        t.import_error = crash or (lines[-1] if lines else "no answer")
        if _is_dll_error(res.stderr):
            t.import_error_kind = "dll"
        ts.ok, ts.error = False, f"importing torch {crash or 'failed'}"
    if "multigpu" in parts:
        _fill(t, parts["multigpu"], skip=("part",))
    elif t.import_ok and "torch" in parts:
        # torch answered, then the child died asking NCCL's version or peer access: that is where it crashed
        t.nccl_error = f"asking NCCL's version and peer access {crash or 'failed'}"
        b.import_ok = None
        b.import_error = "not tried: the probe crashed before (asking NCCL's version and peer access)"
        bs.ok, bs.error = False, b.import_error
        return ts, bs
    if "bnb" in parts:
        _fill(b, parts["bnb"], skip=("part", "lib_error"))
    elif t.import_ok:
        b.import_ok = False
        b.import_error = f"importing bitsandbytes {crash or 'failed'}"
        bs.ok, bs.error = False, b.import_error
    else:
        bs.ok, bs.error = False, "not tried: torch does not import"
    return ts, bs


def _fill(obj, data: dict, skip=()) -> None:
    for k, v in data.items():
        if k in skip or not hasattr(obj, k):
            continue
        setattr(obj, k, v)


def _crash_reason(res) -> str | None:
    if res.timed_out:
        return "hung (no answer before the timeout; the process was killed)"
    rc = res.returncode
    if rc is not None and rc < 0:
        import signal

        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"crashed with {name}"
    if rc is not None and rc > 0 and sys.platform == "win32" and rc > 0x7FFFFFFF:
        return f"crashed with exception 0x{rc:08X}"
    if rc not in (0, None):
        return f"exited with code {rc}"
    return None


_DLL = re.compile(r"WinError (126|127|1114)|DLL load failed|\.dll|cannot open shared object file|undefined symbol", re.I)


def _is_dll_error(text: str) -> bool:
    return bool(_DLL.search(text or ""))
