"""tunedoc run from a user's own ML project, whose folders are named like ours: nothing of theirs is imported.

The folder holds packages named `models`, `trainer`, `doctor`, `profiles`, `tui`, `utils` and `tunedoc` that raise on
import. tunedoc's own packages live under the `tunedoc` namespace when installed, and every child tunedoc starts
(the trainer and its ranks, the demo, an export, a data check, the app behind `tunedoc serve`) drops the current
folder from its path, so each command below works there.

`python -m tunedoc` puts the current folder first on the path before any code of ours runs; the wheel and the
editable install carry `tunedoc-python-m.pth` (setup.py, tunedoc/pth.py), whose finder gives `-m tunedoc` the
installed tunedoc. The last tests build both kinds of install into a fresh environment and try them there.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

from tunedoc import pth

NAMES = ("models", "trainer", "doctor", "profiles", "tui", "utils", "tunedoc")
TUNEDOC = str(Path(sys.executable).parent / ("tunedoc.exe" if os.name == "nt" else "tunedoc"))


def _project(root: Path, names=NAMES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        pkg = root / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text(f'raise ImportError("the user\'s own {name!r} package was imported")\n')
        (pkg / "cli.py").write_text('raise ImportError("the user\'s own cli module was imported")\n')
    return root


@pytest.fixture
def project(tmp_path):
    return _project(tmp_path / "my project")


def run(cwd: Path, *args, timeout=300, env=None):
    out = subprocess.run([TUNEDOC, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    assert "the user's own" not in out.stderr + out.stdout, out.stderr[-2000:]
    return out


def test_doctor_models_and_data_check_ignore_the_users_packages(project, identity_jsonl, tmp_path):
    doctor = run(project, "doctor", "--json")
    assert doctor.returncode in (0, 1), doctor.stderr[-2000:]
    assert json.loads(doctor.stdout)["findings"]
    models = run(project, "models", "--json", env={"HF_HOME": str(tmp_path / "hf")})
    assert models.returncode == 0, models.stderr[-2000:]
    assert json.loads(models.stdout)["models"] == []
    check = run(project, "data", "check", identity_jsonl, "--json")
    assert check.returncode == 0, check.stderr[-2000:]


@pytest.mark.slow
def test_train_detach_export_and_demo_in_the_users_folder(project, tiny_model_dir, identity_jsonl):
    runs = project / "runs"
    started = run(project, "train", "--model", tiny_model_dir, "--data", identity_jsonl, "--profile", "qlora-min",
                  "--runs-dir", runs, "--detach", "--json", "--set", "max_steps=2", "--set", "cutoff_len=64",
                  "--set", "micro_batch=1", "--set", "grad_accum=1")
    assert started.returncode == 0, started.stderr[-2000:]
    run_dir = Path(json.loads(started.stdout)["run_dir"])
    deadline = time.monotonic() + 240
    status = {}
    while time.monotonic() < deadline:
        try:
            status = json.loads((run_dir / "status.json").read_text())
        except (OSError, ValueError):
            status = {}
        if status.get("status") in ("completed", "failed"):
            break
        time.sleep(0.5)
    log = (run_dir / "trainer.log").read_text(errors="replace")
    assert status.get("status") == "completed", log[-3000:]
    assert "the user's own" not in log
    exported = run(project, "export", run_dir.name, "--runs-dir", runs, "--json")
    assert exported.returncode == 0, exported.stderr[-2000:]
    demo = run(project, "demo", "--headless", "--steps", "3", "--runs-dir", runs)
    assert demo.returncode == 0, demo.stderr[-2000:]


def test_serve_in_the_users_folder(project):
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([TUNEDOC, "serve", "--port", str(port)], cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "TUNEDOC_RUNS_DIR": str(project / "runs")})
    try:
        lines = []
        deadline = time.monotonic() + 60
        url = None
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"(http://\S+/\?token=\S+)", line)
            url = found.group(1) if found else None
        assert url, "".join(lines)
        while time.monotonic() < deadline:  # the URL is printed as the server binds: wait for the port
            try:
                socket.create_connection(("localhost", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        # as a browser: the token URL sets the cookie and redirects to the clean URL, which the cookie opens
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with opener.open(url, timeout=30) as page:
            assert page.status == 200 and "textual" in page.read().decode().lower()
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(timeout=10)


def _python_m(python, cwd: Path, *args, env=None):
    return subprocess.run([str(python), "-m", "tunedoc", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


def test_python_m_tunedoc_in_a_folder_with_a_tunedoc_package_of_its_own(project, tmp_path):
    import site

    assert any((Path(d) / pth.PTH_NAME).is_file() for d in site.getsitepackages()), (
        f"{pth.PTH_NAME} is not in this environment's site-packages: reinstall tunedoc (pip install -e .)")
    helped = _python_m(sys.executable, project, "--help")
    assert helped.returncode == 0 and "usage: tunedoc" in helped.stdout, helped.stderr[-2000:]
    doctor = _python_m(sys.executable, project, "doctor", "--json")
    assert doctor.returncode in (0, 1), doctor.stderr[-2000:]
    assert json.loads(doctor.stdout)["findings"]
    models = _python_m(sys.executable, project, "models", "--json", env={"HF_HOME": str(tmp_path / "hf")})
    assert models.returncode == 0, models.stderr[-2000:]
    assert json.loads(models.stdout)["models"] == []
    for out in (helped, doctor, models):
        assert "the user's own" not in out.stdout + out.stderr


def test_other_programs_in_that_folder_are_left_alone(project):
    # the .pth imports nothing for a program that is not `python -m tunedoc` (this command line must not name it)
    plain = subprocess.run([sys.executable, "-c", "import json, sys; print([m for m in sys.modules if 'pth' in m])"],
                           cwd=project, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0 and plain.stdout.strip() == "[]", plain.stderr
    assert "Error processing" not in plain.stderr and "Traceback" not in plain.stderr
    # the user's own code still imports the user's own `tunedoc` package: only `-m tunedoc` is redirected
    theirs = subprocess.run([sys.executable, "-c", "import tunedoc"], cwd=project, capture_output=True, text=True,
                            timeout=60)
    assert "the user's own 'tunedoc' package was imported" in theirs.stderr


@pytest.mark.parametrize("argv, module", [
    (["python", "-m", "tunedoc", "doctor"], "tunedoc"),
    (["python", "-mtunedoc"], "tunedoc"),
    (["python", "-X", "dev", "-W", "error", "-Im", "tunedoc.cli"], "tunedoc.cli"),
    (["python", "-Xdev", "-m", "pip", "install", "tunedoc"], "pip"),
    (["python", "--check-hash-based-pycs", "always", "-m", "tunedoc"], "tunedoc"),
    (["python", "-Bc", "import tunedoc", "-m", "tunedoc"], None),
    (["python", "train.py", "-m", "tunedoc"], None),
    (["/venv/bin/python", "/venv/bin/tunedoc", "doctor"], None),
    (["python", "-"], None),
])
def test_the_pth_finder_is_for_python_m_tunedoc_only(argv, module):
    assert pth.module_of(argv) == module


ROOT = Path(__file__).resolve().parents[1]


def _source_copy(dest: Path) -> Path:
    """The checkout's files (tracked or new, not ignored), without its build leftovers and virtual environment."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, text=True, timeout=60, check=True).stdout.split("\0")
    except (OSError, subprocess.SubprocessError):
        return Path(shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "runs")))
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def _fresh_env(root: Path) -> tuple[str, Path]:
    """A new virtual environment (its python, its site-packages) that borrows this one's dependencies."""
    venv.EnvBuilder(with_pip=False).create(root)
    python = str(root / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))
    site_dir = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   capture_output=True, text=True, timeout=60, check=True).stdout.strip())
    borrowed = [p for p in sys.path if Path(p).name == "site-packages"]
    (site_dir / "_borrowed.pth").write_text("\n".join(borrowed) + "\n")
    return python, site_dir


def _pip(*args):
    out = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *map(str, args)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return out


def test_the_wheel_carries_the_pth_and_uninstalling_removes_it(project, tmp_path):
    src = _source_copy(tmp_path / "src")
    _pip("wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", src)
    wheel = next((tmp_path / "dist").glob("tunedoc-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        assert z.read(pth.PTH_NAME).decode() == pth.PTH_LINE
        assert z.read(f"{pth.MODULE}.py") == (ROOT / "tunedoc" / "pth.py").read_bytes()
    python, site_dir = _fresh_env(tmp_path / "env")
    _pip("--python", python, "install", "-q", "--no-deps", "--no-index", wheel)
    out = _python_m(python, project, "--version")
    assert out.returncode == 0 and out.stdout.startswith("tunedoc "), out.stderr[-2000:]
    _pip("--python", python, "uninstall", "-y", "tunedoc")
    assert not (site_dir / pth.PTH_NAME).exists() and not (site_dir / f"{pth.MODULE}.py").exists()
    after = subprocess.run([python, "-c", "print('ok')"], capture_output=True, text=True, timeout=60)
    assert after.stdout.strip() == "ok" and after.stderr == ""


def test_the_editable_install_carries_the_pth_and_a_checkout_still_runs_its_own(project, tmp_path):
    src = _source_copy(tmp_path / "src")
    python, site_dir = _fresh_env(tmp_path / "env")
    _pip("--python", python, "install", "-q", "--no-deps", "--no-build-isolation", "-e", src)
    assert (site_dir / pth.PTH_NAME).read_text() == pth.PTH_LINE
    init = src / "tunedoc" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "9.9.9+edited-'))
    for cwd in (project, src):  # the user's folder, and the checkout's own root (its tunedoc/ is the installed one)
        out = _python_m(python, cwd, "--version")
        assert out.returncode == 0 and out.stdout.startswith("tunedoc 9.9.9+edited-"), (cwd, out.stderr[-2000:])
