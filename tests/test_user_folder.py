"""tunedoc run from a user's own ML project, whose folders are named like ours: nothing of theirs is imported.

The folder holds packages named `models`, `trainer`, `doctor`, `profiles`, `tui`, `utils` and `tunedoc` that raise on
import. tunedoc's own packages live under the `tunedoc` namespace when installed, and every child tunedoc starts
(the trainer and its ranks, the demo, an export, a data check, the app behind `tunedoc serve`) drops the current
folder from its path, so each command below works there.

`python -m tunedoc` is Python's own: it puts the current folder first, so in a folder that holds a `tunedoc/`
package of its own it runs that one (no installed package can prevent it on Python 3.10). The `tunedoc` command is
not affected; `python -m tunedoc` is tested in a folder with every other name.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

NAMES = ("models", "trainer", "doctor", "profiles", "tui", "utils", "tunedoc")
TUNEDOC = str(Path(sys.executable).parent / ("tunedoc.exe" if os.name == "nt" else "tunedoc"))


def _project(root: Path, names=NAMES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        pkg = root / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text(f"raise ImportError('the user\\'s own {name!r} package was imported')\n")
        (pkg / "cli.py").write_text("raise ImportError('the user\\'s own cli module was imported')\n")
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


def test_python_m_tunedoc_in_a_folder_with_our_other_names(tmp_path, identity_jsonl):
    folder = _project(tmp_path / "proj", names=tuple(n for n in NAMES if n != "tunedoc"))
    for args in (["--help"], ["doctor", "--json"], ["data", "check", str(identity_jsonl), "--json"]):
        out = subprocess.run([sys.executable, "-m", "tunedoc", *args], cwd=folder, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode in (0, 1), (args, out.stderr[-2000:])
        assert "the user's own" not in out.stderr + out.stdout
