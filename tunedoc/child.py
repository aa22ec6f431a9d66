"""Command lines for tunedoc's own child processes that never import from the current folder.

`python -m tunedoc ...` puts the current folder first on `sys.path`, and ML projects very often hold folders named
`models/`, `trainer/`, `utils/` or even `tunedoc/`. Every child tunedoc starts (the trainer, the demo, an export, a
data check, the app behind `tunedoc serve`) therefore runs through `python -c BOOT MODULE ARGS...`: BOOT drops the
current folder from the path and runs MODULE as `__main__`, on every Python tunedoc supports (3.10+; `-P` exists
only from 3.11). The interpreter may be another venv's; it needs tunedoc installed, as `-m` did.
"""

from __future__ import annotations

import shlex
import sys

# sys.path[0] is '' (the current folder) for `python -c`: drop it, then behave as `python -m MODULE ARGS...`
BOOT = ("import runpy, sys; del sys.path[0]; sys.argv = sys.argv[1:]; "
        "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)")


def python_m(module: str, *args: str, python: str | None = None) -> list[str]:
    """The argv of `python -m module args...`, minus the current folder on the child's path."""
    return [python or sys.executable, "-c", BOOT, module, *map(str, args)]


def tunedoc_argv(*args: str, python: str | None = None) -> list[str]:
    """The argv of `tunedoc args...` run by `python` (default: this interpreter)."""
    return python_m("tunedoc", *args, python=python)


def shell_command(argv: list[str]) -> str:
    """One shell command line (for tools that take a string, such as textual-serve)."""
    if sys.platform == "win32":
        import subprocess

        return subprocess.list2cmdline(argv)
    return shlex.join(argv)
