"""Import hygiene (as harlequin checks it): in a fresh interpreter, importing the domain packages and running the
doctor's whole `--json` path leaves torch, transformers and bitsandbytes (and, outside tui/, textual) out of
`sys.modules`. A broken torch can then never crash the doctor or the screen meant to diagnose it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "bitsandbytes", "peft", "accelerate", "datasets")

# every module of these packages, plus the trainer modules the TUI and the CLI import
PACKAGES = ("tunedoc.doctor", "tunedoc.profiles", "tunedoc.models")
TRAINER_LIGHT = ("tunedoc.trainer.events", "tunedoc.trainer.launch", "tunedoc.trainer.control", "tunedoc.trainer.rundir", "tunedoc.trainer.cli")

SCRIPT = r"""
import importlib, json, pkgutil, sys
packages, extra, run_doctor = json.loads(sys.argv[1])
imported, failed = [], {}
names = list(extra)
for pkg in packages:
    try:
        mod = importlib.import_module(pkg)
    except Exception as e:
        failed[pkg] = repr(e)
        continue
    names.append(pkg)
    for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
        if not info.name.endswith("__main__"):  # running it would start the program
            names.append(info.name)
for name in names:
    try:
        importlib.import_module(name)
        imported.append(name)
    except ModuleNotFoundError as e:
        if e.name == name:  # an optional module that does not exist (yet)
            continue
        failed[name] = repr(e)
    except Exception as e:
        failed[name] = repr(e)
rc = None
if run_doctor:
    import argparse, contextlib, io
    from tunedoc.doctor.cli import doctor_args, doctor_main
    parser = argparse.ArgumentParser()
    doctor_args(parser)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        rc = doctor_main(parser.parse_args(["--json"]))
    json.loads(out.getvalue())
print(json.dumps({"imported": imported, "failed": failed, "rc": rc, "modules": sorted(sys.modules)}))
"""


def run_in_child(packages, extra, run_doctor: bool) -> dict:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps([packages, extra, run_doctor])],
                          capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_domain_packages_and_the_doctor_run_import_no_heavy_library():
    res = run_in_child(list(PACKAGES), list(TRAINER_LIGHT), run_doctor=True)
    assert not res["failed"], res["failed"]
    assert "tunedoc.doctor.cli" in res["imported"] and "tunedoc.doctor.run" in res["imported"]
    assert res["rc"] in (0, 1)
    loaded = set(res["modules"])
    assert not loaded & set(FOLDERS), "a bare top-level doctor/trainer/... module was imported"
    bad = [m for m in (*HEAVY, "textual") if m in loaded]
    assert not bad, f"imported in tunedoc's own process: {bad}"


def test_tui_imports_no_heavy_library():
    if not (ROOT / "tui" / "__init__.py").exists():
        pytest.skip("tui/ does not exist yet")
    res = run_in_child(["tunedoc.tui"], [], run_doctor=False)
    assert not res["failed"], res["failed"]
    loaded = set(res["modules"])
    bad = [m for m in HEAVY if m in loaded]
    assert not bad, f"the TUI imports {bad}: start-up would be slow and a broken torch would crash the app"


# ------------------------------------------------------------------------------------------------ static import graph
# The repository's top-level folders are installed as tunedoc.<folder> (pyproject's package-dir): a user's own
# `models/` or `trainer/` package can never be imported in their place.
DOMAIN = ("trainer", "profiles", "doctor", "models")
FOLDERS = (*DOMAIN, "tui")
OURS = (*FOLDERS, "tunedoc")


def _imports(path: Path) -> set[str]:
    """Every module `path` imports that is ours or carries one of our folder names, at module level or inside a
    function (a lazy import is still a dependency: it runs as soon as that code path does)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in OURS)
    return found


def _module_files() -> dict[str, Path]:
    """tunedoc.<module name> -> file, for every module of the installed package."""
    files = {}
    for pkg in OURS:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            name = ".".join(parts)
            files[name if pkg == "tunedoc" else f"tunedoc.{name}"] = path
    return files


def test_every_import_goes_through_the_tunedoc_namespace():
    bare = {name: sorted(m for m in _imports(path) if m.split(".")[0] in FOLDERS)
            for name, path in _module_files().items()}
    for path in sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py")):
        bare[str(path.relative_to(ROOT))] = sorted(m for m in _imports(path) if m.split(".")[0] in FOLDERS)
    bare = {k: v for k, v in bare.items() if v}
    assert not bare, f"import tunedoc.<package>, never the bare folder name (a user's own package wins): {bare}"


def test_no_domain_package_imports_the_tui():
    files = _module_files()
    upward = {name: sorted(m for m in _imports(path) if m.startswith("tunedoc.tui"))
              for name, path in files.items() if name.split(".")[1:2] and name.split(".")[1] in DOMAIN}
    upward = {k: v for k, v in upward.items() if v}
    assert not upward, f"trainer/, profiles/, doctor/ and models/ must not import tui (DESIGN.md): {upward}"


def test_no_two_modules_import_each_other():
    files = _module_files()
    graph = {name: {m for m in _imports(path) if m in files and m != name} for name, path in files.items()}
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps if a in graph.get(b, ())})
    assert not pairs, f"modules that import each other (move the shared part into a module of its own): {pairs}"
