"""The real `tunedoc train` CLI on the tiny local model: nf4, int8 and 16-bit LoRA runs whose loss falls, exact
resume after kill -9, bad input that fails before any model loads, NaN losses, and no secrets on disk."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunedoc.trainer.events import read_events
from tunedoc.trainer.rundir import read_json

FAST = ["--set", "cutoff_len=128", "--set", "micro_batch=2", "--set", "grad_accum=2", "--set", "lr=3e-3",
        "--set", "lora_dropout=0.0"]


def tunedoc(*args, timeout=180, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "tunedoc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


def train_json(model, data, runs, *extra, env=None):
    out = tunedoc("train", "--model", model, "--data", data, "--profile", "qlora-min", "--runs-dir", runs,
                  "--json", *FAST, *extra, env=env)
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return out, events


def losses(events) -> dict[int, float]:
    """The latest loss per step (a resumed run re-logs the steps after its checkpoint)."""
    return {e["step"]: e["loss"] for e in events if e["type"] == "step"}


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["nf4", "int8", "none"])
def test_loss_falls_for_each_quantization(quant, tiny_model_dir, identity_jsonl, tmp_path):
    secret = "hf_" + "SeCrEt" * 6  # a token in the environment must never reach the run's files
    env = dict(os.environ, HF_TOKEN=secret)
    out, events = train_json(tiny_model_dir, identity_jsonl, tmp_path, "--set", f"quant={quant}",
                             "--set", "max_steps=12", "--name", f"x{secret}", env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    start = next(e for e in events if e["type"] == "start")
    assert start["quant"] == quant and start["total_steps"] == 12 and start["versions"]["torch"]
    steps = [e for e in events if e["type"] == "step"]
    assert [e["step"] for e in steps] == list(range(1, 13))
    first, last = sum(e["loss"] for e in steps[:3]) / 3, sum(e["loss"] for e in steps[-3:]) / 3
    assert last < first - 0.1, f"{quant}: loss did not fall ({first:.3f} -> {last:.3f})"
    s = steps[-1]
    assert s["tokens_per_s"] > 0 and s["peak_mem_mb"] > 0 and s["mem_kind"] == "rss" and s["grad_norm"] > 0
    done = events[-1]
    assert done["type"] == "done" and done["status"] == "completed" and done["steps"] == 12
    # the estimator's figure for this run is recorded; a measured GPU peak only exists on CUDA
    assert start["estimate_gib"] > 0 and done["memory"]["estimate_gib"] == pytest.approx(start["estimate_gib"], abs=1e-3)
    assert "measured_gib" not in done["memory"]
    run_dir = Path(done["adapter"]).parent
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert read_json(run_dir / "status.json")["status"] == "completed"
    # the CPU fallback of the 8-bit optimizer is said, not silent
    assert any(e["type"] == "warning" and e.get("id") == "cpu-optimizer" for e in events)
    for f in run_dir.rglob("*"):
        if f.is_file() and f.suffix in (".json", ".jsonl", ".log", ""):
            assert secret not in f.read_text(errors="replace"), f
    assert secret not in out.stdout and secret not in run_dir.name


@pytest.mark.slow
def test_resume_after_kill_9_continues_the_same_loss_curve(tiny_model_dir, identity_jsonl, tmp_path):
    common = ["--set", "max_steps=12", "--set", "save_every=4", "--set", "lora_dropout=0.1", "--set", "quant=nf4"]
    ref, ref_events = train_json(tiny_model_dir, identity_jsonl, tmp_path / "ref", *common)
    assert ref.returncode == 0, ref.stderr[-2000:]

    runs = tmp_path / "killed"
    out = tunedoc("train", "--model", tiny_model_dir, "--data", identity_jsonl, "--profile", "qlora-min",
                  "--runs-dir", runs, "--detach", "--json", *FAST, *common)
    info = json.loads(out.stdout)
    run_dir = Path(info["run_dir"])
    deadline = time.time() + 120
    while not (run_dir / "checkpoints" / "step-000008" / "trainer_state.pt").exists():
        assert time.time() < deadline, (run_dir / "trainer.log").read_text()[-2000:]
        time.sleep(0.05)
    os.kill(info["pid"], signal.SIGKILL)
    time.sleep(0.5)
    listed = json.loads(tunedoc("runs", "--runs-dir", runs, "--json").stdout)
    assert listed[0]["status"] == "failed" and "gone without finishing" in listed[0]["error"]

    res = tunedoc("train", "--resume", info["run_id"][:10], "--runs-dir", runs, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    resumed = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    start = [e for e in resumed if e["type"] == "start"][-1]
    assert start["resumed_from_step"] == 8
    new_steps = [e["step"] for e in resumed if e["type"] == "step" and e["t"] >= start["t"]]
    assert new_steps == [9, 10, 11, 12], "steps must continue from the checkpoint, not restart"
    got = losses(read_events(run_dir / "events.jsonl")[0])
    want = losses(ref_events)
    assert sorted(got) == list(range(1, 13))
    for step in range(1, 13):
        assert got[step] == pytest.approx(want[step], abs=1e-4), f"step {step}: {got[step]} vs {want[step]}"
    assert read_json(run_dir / "status.json")["status"] == "completed"


def test_malformed_data_fails_before_any_process_starts_with_line_numbers(tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
                   '{"messages": [{"role": "user", "content": "hi"}\n'
                   '{"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]}\n')
    out = tunedoc("train", "--model", tiny_model_dir, "--data", bad, "--runs-dir", tmp_path / "runs", timeout=60)
    assert out.returncode == 2
    assert "bad.jsonl:2" in out.stderr and "bad.jsonl:3" in out.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_bad_profile_values_are_all_listed(tiny_model_dir, identity_jsonl, tmp_path):
    out = tunedoc("train", "--model", tiny_model_dir, "--data", identity_jsonl, "--runs-dir", tmp_path,
                  "--set", "quant=nf5", "--set", "lr=-1", "--set", "colour=red", timeout=60)
    assert out.returncode == 2
    assert "quant='nf5'" in out.stderr and "lr=-1" in out.stderr and "unknown field 'colour'" in out.stderr


def test_missing_arguments_and_unknown_runs_name_the_fix(tmp_path):
    out = tunedoc("train", timeout=60)
    assert out.returncode == 2 and "--model and --data required" in out.stderr
    out = tunedoc("watch", "nope", "--runs-dir", tmp_path, "--plain", timeout=60)
    assert out.returncode == 2 and "no run 'nope'" in out.stderr


@pytest.mark.slow
def test_nan_loss_ends_in_an_error_event_and_keeps_checkpoints(tiny_model_dir, identity_jsonl, tmp_path):
    out, events = train_json(tiny_model_dir, identity_jsonl, tmp_path, "--set", "quant=none",
                             "--set", "max_steps=30", "--set", "save_every=1", "--set", "lr=1e30",
                             "--set", "warmup=0", "--set", "scheduler=constant")
    assert out.returncode == 1
    err = [e for e in events if e["type"] == "error"]
    assert err and err[0]["id"] == "nan-loss" and "lower lr" in err[0]["hint"]
    assert events[-1]["type"] == "done" and events[-1]["status"] == "failed"
    run_dir = Path([e for e in events if e["type"] == "checkpoint"][0]["path"]).parents[1]
    st = read_json(run_dir / "status.json")
    assert st["status"] == "failed" and st["error_id"] == "nan-loss"
    assert list((run_dir / "checkpoints").glob("step-*")), "earlier checkpoints must survive"


@pytest.mark.slow
def test_foreground_text_progress_and_watch_replays_history(tiny_model_dir, identity_jsonl, tmp_path):
    # a relative --runs-dir, as users type it: the detached child must still find its run
    out = tunedoc("train", "--model", tiny_model_dir, "--data", identity_jsonl, "--profile", "qlora-min",
                  "--runs-dir", "my runs", *FAST, "--set", "max_steps=3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "step       3/3" in out.stdout and "done: completed" in out.stdout
    runs = tmp_path / "my runs"
    run_id = next(p.name for p in runs.iterdir() if p.is_dir() and not p.name.startswith("."))
    watch = tunedoc("watch", run_id, "--plain", "--runs-dir", runs, timeout=60)
    assert watch.returncode == 0
    assert watch.stdout.count("step ") >= 3 and "done: completed" in watch.stdout
    table = tunedoc("runs", timeout=60, cwd=tmp_path, env=dict(os.environ, TUNEDOC_RUNS_DIR="my runs"))
    assert run_id in table.stdout and "completed" in table.stdout and "3/3" in table.stdout


@pytest.mark.slow
def test_sampling_mid_run_leaves_training_unchanged(tiny_model_dir, identity_jsonl, tmp_path):
    # generating (and evaluating) switch the model to eval mode under no_grad; on a CPU with AVX512-BF16 bitsandbytes
    # then repacks the 4-bit weights for inference, and the next training steps would backprop through a kernel
    # without gradients (wrong updates, a UserWarning in trainer.log). The loss curve must not notice the samples.
    common = ["--set", "max_steps=8", "--set", "quant=nf4", "--set", "seed=3", "--set", 'sample_prompts=["Who?"]']
    plain, plain_events = train_json(tiny_model_dir, identity_jsonl, tmp_path / "plain", *common,
                                     "--set", "sample_every=0", "--set", "eval_split=0")
    sampled, sampled_events = train_json(tiny_model_dir, identity_jsonl, tmp_path / "sampled", *common,
                                         "--set", "sample_every=2", "--set", "eval_split=0")
    assert plain.returncode == 0 and sampled.returncode == 0, (plain.stderr[-2000:], sampled.stderr[-2000:])
    assert sum(e["type"] == "sample" for e in sampled_events) >= 4
    a, b = losses(plain_events), losses(sampled_events)
    assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], abs=1e-5) for k in a), (a, b)
    log = (Path(next(e for e in sampled_events if e["type"] == "done")["adapter"]).parent / "trainer.log").read_text()
    assert "an autograd kernel was not registered" not in log
