"""`python -m tunedoc` runs the installed tunedoc, even in a folder that holds a `tunedoc/` package of its own.

For `-m`, Python puts the current folder first on `sys.path` and looks the module up before any code of ours runs.
The one hook that runs earlier is site's processing of `.pth` files, so tunedoc's wheel and its editable install
(setup.py) carry `tunedoc-python-m.pth` and a copy of this file as the top-level module `_tunedoc_pth`.

The .pth line costs every other Python program in the environment a look at `sys.orig_argv` (3.10+) and nothing
else: only a command line that names tunedoc imports this module, and only `python [options] -m tunedoc[.sub] ...`
puts the finder first on `sys.meta_path`. The finder answers for the one name `tunedoc`, with the spec the other
finders give when the current folder is left off the path: the installed tunedoc (site-packages, or the editable
install's own finder). For every other name, or where no tunedoc exists outside the current folder, it answers
nothing and the usual finders decide, so a checkout run from its own root behaves as before. It never raises: any
failure leaves Python's usual behaviour.

Only the standard library here: this file also runs as a top-level module, outside the tunedoc package.
"""

from __future__ import annotations

import os
import sys

MODULE = "_tunedoc_pth"
PTH_NAME = "tunedoc-python-m.pth"
# site runs a .pth line that starts with "import"; a failure here must never stop Python from starting
PTH_LINE = ("import sys; exec('try:\\n import _tunedoc_pth\\nexcept Exception:\\n pass\\nelse:\\n "
            "_tunedoc_pth.install()') if any('tunedoc' in a for a in getattr(sys, 'orig_argv', ())[1:]) else None\n")


def module_of(argv: list[str]) -> str | None:
    """The module a command line runs with `-m` (`python -X dev -Im tunedoc doctor` -> 'tunedoc'), else None."""
    args = iter(argv[1:])
    for arg in args:
        if arg == "--check-hash-based-pycs":
            next(args, None)
            continue
        if arg.startswith("--"):
            if arg == "--":
                return None
            continue
        if arg == "-" or not arg.startswith("-"):
            return None  # a script or stdin
        for i, flag in enumerate(arg[1:], start=1):
            if flag in "WX":  # their value is the rest of this argument or the next one
                if i == len(arg) - 1:
                    next(args, None)
                break
            if flag == "c":
                return None
            if flag == "m":
                return arg[i + 1:] or next(args, None)
    return None


class InstalledTunedoc:
    """A meta-path finder for the top-level name `tunedoc` that never looks in the current folder."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "tunedoc" or path is not None:
            return None
        try:
            return _spec_away_from_cwd(target)
        except Exception:  # never break an import: the usual finders decide
            return None


def _spec_away_from_cwd(target):
    from importlib.machinery import PathFinder

    here = os.path.normcase(os.getcwd())
    away = [entry for entry in sys.path
            if not (isinstance(entry, str) and os.path.normcase(os.path.abspath(entry or os.curdir)) == here)]
    for finder in sys.meta_path:
        if finder is InstalledTunedoc or not hasattr(finder, "find_spec"):
            continue
        spec = finder.find_spec("tunedoc", away if finder is PathFinder else None, target)
        if spec is not None:
            return spec
    return None


def install() -> None:
    """Put the finder first on sys.meta_path when this process is `python -m tunedoc[.sub] ...`."""
    try:
        name = module_of(list(getattr(sys, "orig_argv", ())))
        if name and name.split(".")[0] == "tunedoc" and InstalledTunedoc not in sys.meta_path:
            sys.meta_path.insert(0, InstalledTunedoc)
    except Exception:
        pass
