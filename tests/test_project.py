"""The project's front door: the README's quick start, CI, and `tunedoc --help` agree with each other."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quick_start() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_quick_start_is_exactly_two_commands():
    cmds = _quick_start()
    assert len(cmds) == 2, cmds
    assert cmds[0].rstrip().endswith("tunedoc"), "the first command must set up and start tunedoc"
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _quick_start()[1] in ci.splitlines()
    # CI pins torch to the local CPU wheel: an unpinned torch pulls a multi-GB CUDA build
    assert "torch==2.13.0" in (ROOT / ".ci" / "constraints.txt").read_text()


def test_help_lists_every_command_and_each_has_help():
    from tunedoc.cli import COMMANDS

    out = subprocess.run([sys.executable, "-m", "tunedoc", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s+\S", out.stdout, re.M), f"{name} missing from tunedoc --help"


def test_unknown_command_is_a_clear_error():
    out = subprocess.run([sys.executable, "-m", "tunedoc", "doctr"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "unknown command 'doctr'" in out.stderr


def test_every_command_has_help_that_names_it():
    from tunedoc.cli import COMMANDS

    for name in COMMANDS:
        out = subprocess.run([sys.executable, "-m", "tunedoc", name, "--help"], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, f"tunedoc {name} --help failed: {out.stderr[-500:]}"
        assert f"usage: tunedoc {name}" in out.stdout


def test_pyproject_installs_every_package_under_the_tunedoc_namespace():
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs = cfg["package-dir"]
    assert set(dirs) == {"tunedoc", "tunedoc.doctor", "tunedoc.tui", "tunedoc.trainer", "tunedoc.profiles",
                         "tunedoc.models"}
    on_disk = {"tunedoc"}
    for name, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            on_disk.add(".".join([name, *rel.parts]))
    assert set(cfg["packages"]) == on_disk, "pyproject's packages list and the tree disagree"
    assert not any(p.split(".")[0] != "tunedoc" for p in cfg["packages"]), "a generic top-level name"
