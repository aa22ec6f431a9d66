"""`tunedoc doctor`: probe this machine (or read pasted reports), explain what is wrong, give the exact fix.

    tunedoc doctor                      # summary, one line per finding, grouped by area
    tunedoc doctor -v                   # + explanation, evidence, fix commands, probe timings
    tunedoc doctor --json               # one object {"version", "facts", "findings"} on stdout
    tunedoc doctor --python ~/env/bin/python      # diagnose another venv / conda env
    tunedoc doctor --from report.txt [--from log.txt]   # pasted collect_env / nvidia-smi / pip list / tracebacks
    tunedoc doctor --save machine.json  # facts + findings with user names, home paths, hosts and tokens redacted
    tunedoc doctor --offline            # contact no model source (the Hub, a mirror, ModelScope are not checked)

Exit codes: 0 no error finding, 1 an error finding stands, 2 bad input (a --from file, --python), 130 interrupted.
stdout carries the data (summary or JSON); progress and diagnostics go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
from pathlib import Path


def doctor_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show each finding's explanation, evidence and fix commands, and probe timings")
    parser.add_argument("--json", action="store_true",
                        help='print one JSON object {"version", "facts", "findings"} instead of the summary')
    parser.add_argument("--python", metavar="PATH",
                        help="the Python interpreter to diagnose (another venv or conda env); default: this one")
    parser.add_argument("--from", dest="from_files", metavar="FILE", action="extend", nargs="+",
                        help="diagnose pasted reports instead of this machine: tunedoc --save/--json output, "
                             "collect_env, nvidia-smi (also topo -m), pip list, nvcc, tracebacks; several files merge; "
                             "- is stdin")
    parser.add_argument("--save", metavar="FILE",
                        help="also write the facts and findings as JSON, redacted, to share in an issue")
    parser.add_argument("--timeout", metavar="S", type=float,
                        help="seconds to wait for each child process (torch import: 60 by default)")
    parser.add_argument("--offline", action="store_true",
                        help="do not check whether the Hugging Face Hub, the HF_ENDPOINT mirror and ModelScope "
                             "answer (each check otherwise waits at most 3 s, alongside the other probes)")


def doctor_main(args: argparse.Namespace) -> int:
    from tunedoc.doctor.facts import Facts

    err = sys.stderr
    python = None
    if args.python:
        python = _resolve_python(args.python)
        if python is None:
            print(f"tunedoc doctor: --python {args.python}: no such interpreter. Give the path of the python "
                  f"executable of the environment to diagnose (e.g. ~/venv/bin/python, or where `conda activate "
                  f"ENV` puts `python`).", file=err)
            return 2
    if args.timeout is not None and args.timeout <= 0:
        print("tunedoc doctor: --timeout must be a positive number of seconds, e.g. --timeout 120", file=err)
        return 2

    if args.from_files:
        from tunedoc.doctor.reports import ReportError, parse_files

        try:
            facts: Facts = parse_files(args.from_files)
        except ReportError as e:
            print(f"tunedoc doctor: {e}", file=err)
            return 2
    else:
        try:
            facts = _probe_with_progress(python, args.timeout, show=not args.json and err.isatty(),
                                         offline=args.offline)
        except KeyboardInterrupt:
            from tunedoc.doctor.run import cancel

            cancel()
            print("\ntunedoc doctor: interrupted; probe processes stopped.", file=err)
            return 130

    from tunedoc.doctor.run import diagnose

    findings = diagnose(facts)
    payload = to_payload(facts, findings)

    if args.save:
        try:
            save(payload, args.save)
        except OSError as e:
            print(f"tunedoc doctor: cannot write {args.save}: {e.strerror or e}. Choose a writable path.", file=err)
            return 2
        print(f"Saved these facts and findings to {args.save} (user names, home paths, host names and tokens "
              f"redacted). Attach it to an issue; `tunedoc doctor --from {args.save}` reads it back.", file=err)

    if args.json:
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    else:
        from tunedoc.doctor.render import render

        render(facts, findings, verbose=args.verbose)
    return 1 if any(f.severity == "error" for f in findings) else 0


def to_payload(facts, findings) -> dict:
    from tunedoc import __version__

    return {"version": __version__, "facts": facts.to_dict(), "findings": [f.to_dict() for f in findings]}


def save(payload: dict, path: str) -> None:
    """Write `payload` redacted, atomically (a crash never leaves half a file)."""
    from tunedoc.doctor.redact import redact_obj

    text = json.dumps(redact_obj(payload), indent=2, ensure_ascii=False) + "\n"
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)


def _resolve_python(value: str) -> str | None:
    p = Path(value).expanduser()
    if p.is_dir():  # a venv or conda env directory: its interpreter
        for cand in (p / "bin" / "python", p / "Scripts" / "python.exe", p / "python.exe"):
            if cand.is_file():
                return str(cand)
        return None
    if p.is_file():
        return str(p)
    found = shutil.which(value)
    return found


def _probe_with_progress(python: str | None, timeout: float | None, show: bool, offline: bool = False):
    """Run every probe; on a terminal, a spinner on stderr names the probes still running."""
    from tunedoc.doctor.run import PROBES, probe_all

    if not show:
        return probe_all(python=python, timeout=timeout, offline=offline)
    from rich.console import Console

    console = Console(stderr=True)
    pending = set(PROBES)
    lock = threading.Lock()

    def label() -> str:
        waiting = ", ".join(n for n in PROBES if n in pending)
        return f"Probing this machine… waiting for: {waiting}" if waiting else "Diagnosing…"

    with console.status(label()) as status:
        def on_status(name, st) -> None:
            with lock:
                pending.discard(name)
                status.update(label())

        return probe_all(python=python, timeout=timeout, on_status=on_status, offline=offline)
