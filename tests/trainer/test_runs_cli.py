"""`tunedoc runs`: a --runs-dir that is a file is an error, and a failed run's error fits the table, cut at a word."""

import json
import os
import subprocess
import sys

from tunedoc.trainer.cli import shorten

ERROR = ("ValueError: Couldn't instantiate the backend tokenizer from one of: (1) a `tokenizers` library "
         "serialization file, (2) a slow tokenizer instance to convert or (3) an equivalent slow tokenizer class "
         "to instantiate and convert.\nYou need to have sentencepiece or tiktoken installed")


def tunedoc(*args, columns=100):
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-m", "tunedoc", *map(str, args)], capture_output=True, text=True,
                          timeout=60, env=env)


def test_a_runs_dir_that_is_a_file_is_an_error(tmp_path):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("mine")
    out = tunedoc("runs", "--runs-dir", not_a_folder)
    assert out.returncode == 2
    assert "is a file, not a folder" in out.stderr, out.stderr
    assert not_a_folder.read_text() == "mine"


def test_a_failed_runs_error_is_cut_at_a_word_with_an_ellipsis(tmp_path):
    run = tmp_path / "20260101-000000-tiny"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "/m/tiny", "profile": {"name": "qlora-min"}}))
    (run / "status.json").write_text(json.dumps({"status": "failed", "error": ERROR, "step": 0}))
    out = tunedoc("runs", "--runs-dir", tmp_path, columns=100)
    assert out.returncode == 0, out.stderr
    line = [l for l in out.stdout.splitlines() if "ValueError" in l][0].strip()
    assert line.endswith("…") and len(line) <= 100 - 42
    words = ERROR.split()
    last = line[:-1].split()[-1]
    assert last in words, f"cut mid-word: {last!r}"
    assert "sentencepiece" not in out.stdout  # the first line only; --json has it all
    full = json.loads(tunedoc("runs", "--runs-dir", tmp_path, "--json").stdout)
    assert full[0]["error"] == ERROR


def test_shorten_keeps_short_single_lines_whole():
    assert shorten("disk full", 80) == "disk full"
    assert shorten("first line\nsecond", 80) == "first line…"


def test_a_run_busy_with_its_closing_eval_lists_as_evaluating(tmp_path):
    import psutil

    run = tmp_path / "20260101-000000-demo-Tuna"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "/m/tiny", "profile": {"name": "qlora-min"}}))
    me = psutil.Process()  # a live process stands for the trainer
    status = {"status": "running", "phase": "evaluating", "step": 40, "total_steps": 40, "pid": me.pid,
              "pid_started": me.create_time()}
    (run / "status.json").write_text(json.dumps(status))
    out = tunedoc("runs", "--runs-dir", tmp_path)
    assert out.returncode == 0, out.stderr
    assert "evaluating" in out.stdout.splitlines()[1], out.stdout
    listed = json.loads(tunedoc("runs", "--runs-dir", tmp_path, "--json").stdout)[0]
    assert (listed["status"], listed["phase"]) == ("running", "evaluating")  # still an active run to scripts
    (run / "status.json").write_text(json.dumps(dict(status, status="completed", phase=None)))
    assert "completed" in tunedoc("runs", "--runs-dir", tmp_path).stdout.splitlines()[1]
