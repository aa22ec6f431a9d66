"""Control files, run dirs, liveness and RUN resolution (no model), then the real CLI steering a live run."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunedoc.trainer import control
from tunedoc.trainer.launch import send_control
from tunedoc.trainer.rundir import (
    RunNotFound,
    list_runs,
    new_run_id,
    read_json,
    redact,
    resolve_run,
    run_status,
    update_status,
    write_json,
)


def _fake_run(root: Path, run_id: str, **status) -> Path:
    d = root / run_id
    d.mkdir(parents=True)
    write_json(d / "config.json", {"model": "/models/tiny", "profile": {"name": "qlora-min"}, "created": time.time()})
    update_status(d, **status)
    return d


def test_requests_are_taken_once_oldest_first(tmp_path):
    control.request(tmp_path, "pause")
    time.sleep(0.02)
    control.request(tmp_path, "stop")
    assert control.pending(tmp_path) == ["pause", "stop"]
    assert control.take(tmp_path) == ["pause", "stop"]
    assert control.take(tmp_path) == []
    with pytest.raises(ValueError, match="valid: save, pause, resume, stop"):
        control.request(tmp_path, "explode")


def test_a_running_status_whose_process_is_gone_reads_failed_with_the_last_error(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    d = _fake_run(tmp_path, "r1", status="running", pid=dead.pid, step=7)
    (d / "events.jsonl").write_text(json.dumps({"v": 1, "t": 1, "type": "warning", "message": "slow"}) + "\n")
    st = run_status(d)
    assert st["status"] == "failed" and st["died"]
    assert "gone without finishing" in st["error"] and "--resume r1" in st["error"]
    # the file itself is not rewritten by a reader
    assert read_json(d / "status.json")["status"] == "running"


def test_a_live_pid_stays_running(tmp_path):
    import psutil

    me = psutil.Process()
    d = _fake_run(tmp_path, "r1", status="running", pid=os.getpid(), pid_started=me.create_time())
    assert run_status(d)["status"] == "running"
    # the same pid with another start time is a reused pid: the run is dead
    update_status(d, pid_started=me.create_time() - 1000)
    assert run_status(d)["status"] == "failed"


def test_control_on_a_finished_run_is_refused_with_the_way_forward(tmp_path):
    d = _fake_run(tmp_path, "r1", status="stopped", step=3)
    with pytest.raises(RuntimeError, match="is stopped, not running.*--resume r1"):
        send_control(d, "pause")
    assert control.pending(d) == []


def test_resolve_by_id_prefix_path_and_name(tmp_path):
    a = _fake_run(tmp_path, "20250101-100000-tiny", status="completed")
    b = _fake_run(tmp_path, "20250102-100000-qwen", status="completed")
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / "not-a-run" / "config.json").write_text("{}")  # a model dir also has config.json
    assert resolve_run("20250101-100000-tiny", tmp_path) == a
    assert resolve_run("20250102", tmp_path) == b
    assert resolve_run("qwen", tmp_path) == b
    assert resolve_run(str(a)) == a
    with pytest.raises(RunNotFound, match="matches several runs"):
        resolve_run("2025010", tmp_path)
    with pytest.raises(RunNotFound, match="no run 'not-a-run'.*--runs-dir"):
        resolve_run("not-a-run", tmp_path)


def test_list_runs_newest_first_with_status_step_loss_memory(tmp_path):
    _fake_run(tmp_path, "old", status="completed", started=1000.0, step=10, total_steps=10, loss=0.5,
              peak_mem_mb=300.0, mem_kind="rss", elapsed_s=12.0)
    _fake_run(tmp_path, "new", status="failed", started=2000.0, step=2, error="boom")
    runs = list_runs(tmp_path)
    assert [r.run_id for r in runs] == ["new", "old"]
    assert runs[1].loss == 0.5 and runs[1].peak_mem_mb == 300.0 and runs[1].profile == "qlora-min"
    assert runs[0].error == "boom"


def test_run_ids_are_unique_and_safe(tmp_path):
    rid = new_run_id("Qwen/Qwen2.5 0.5B: instruct", None, tmp_path)
    assert " " not in rid and ":" not in rid and "/" not in rid and rid.endswith("Qwen2.5-0.5B-instruct")
    (tmp_path / rid).mkdir()
    assert new_run_id("Qwen/Qwen2.5 0.5B: instruct", None, tmp_path) != rid


def test_redact_removes_tokens_from_nested_values(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "my-secret-token-value")
    out = redact({"a": ["x my-secret-token-value y"], "b": "hf_" + "A" * 30, "n": 3})
    assert "my-secret-token-value" not in json.dumps(out) and "hf_AAAA" not in json.dumps(out) and out["n"] == 3


# ------------------------------------------------------------------------------------------- a live run, real CLI

def tunedoc(*args, timeout=120, env=None):
    return subprocess.run([sys.executable, "-m", "tunedoc", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def _wait(pred, timeout=90, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _events(run_dir: Path) -> list[dict]:
    from tunedoc.trainer.events import read_events

    return read_events(run_dir / "events.jsonl")[0]


@pytest.mark.slow
def test_detach_then_save_pause_resume_stop_through_the_cli(tiny_model_dir, identity_jsonl, tmp_path):
    runs = tmp_path / "runs dir"  # a space in the path, as on Windows user folders
    out = tunedoc("train", "--model", str(tiny_model_dir), "--data", str(identity_jsonl), "--profile", "qlora-min",
                  "--set", "max_steps=400", "--set", "cutoff_len=128", "--set", "grad_accum=1",
                  "--runs-dir", str(runs), "--name", "ctl", "--detach")
    assert out.returncode == 0, out.stderr
    run_id, run_dir = out.stdout.strip().split("\t")
    run_dir = Path(run_dir)
    assert run_dir.parent == runs and "ctl" in run_id
    steps = lambda: [e for e in _events(run_dir) if e["type"] == "step"]  # noqa: E731
    _wait(lambda: len(steps()) >= 2, what="two steps")

    assert tunedoc("save", run_id, "--runs-dir", str(runs), "--wait").returncode == 0
    _wait(lambda: any(e["type"] == "checkpoint" and e["reason"] == "request" for e in _events(run_dir)),
          what="requested checkpoint")

    assert tunedoc("pause", run_id[:12], "--runs-dir", str(runs), "--wait").returncode == 0
    _wait(lambda: read_json(run_dir / "status.json").get("status") == "paused", what="paused")
    n = len(steps())
    time.sleep(1.5)
    assert len(steps()) == n, "a paused run kept training"
    listed = json.loads(tunedoc("runs", "--runs-dir", str(runs), "--json").stdout)
    assert listed[0]["status"] == "paused" and listed[0]["step"] == n

    assert tunedoc("resume", run_id, "--runs-dir", str(runs)).returncode == 0
    _wait(lambda: len(steps()) > n + 1, what="steps after resume")
    stop = tunedoc("stop", str(run_dir), "--wait")
    assert stop.returncode == 0, stop.stderr
    events = _events(run_dir)
    types = [e["type"] for e in events]
    assert "paused" in types and "resumed" in types
    done = events[-1]
    assert done["type"] == "done" and done["status"] == "stopped" and done["steps"] < 400
    assert any(e["type"] == "checkpoint" and e["reason"] == "stop" for e in events)
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert read_json(run_dir / "status.json")["status"] == "stopped"
    # a stopped run cannot be steered, and says how to continue
    again = tunedoc("pause", run_id, "--runs-dir", str(runs))
    assert again.returncode == 1 and "--resume" in again.stderr


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="POSIX signal")
def test_sigterm_saves_a_checkpoint_before_exiting(tiny_model_dir, identity_jsonl, tmp_path):
    out = tunedoc("train", "--model", str(tiny_model_dir), "--data", str(identity_jsonl), "--profile", "qlora-min",
                  "--set", "max_steps=400", "--set", "cutoff_len=128", "--set", "grad_accum=1",
                  "--runs-dir", str(tmp_path), "--detach", "--json")
    info = json.loads(out.stdout)
    run_dir = Path(info["run_dir"])
    _wait(lambda: any(e["type"] == "step" for e in _events(run_dir)), what="first step")
    os.kill(info["pid"], 15)
    _wait(lambda: _events(run_dir)[-1]["type"] == "done", what="done after SIGTERM")
    events = _events(run_dir)
    ckpt = [e for e in events if e["type"] == "checkpoint"]
    assert ckpt and ckpt[-1]["reason"] == "signal" and Path(ckpt[-1]["path"]).is_dir()
    assert events[-1]["status"] == "stopped"
