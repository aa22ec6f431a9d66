"""OOM step-down: the order of moves, and the real recovery path in a run (OOM injected in the forward with
TUNEDOC_TEST_OOM_BUDGET, see trainer/oom.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tunedoc.trainer.oom import MIN_CUTOFF, MemorySettings, next_fallback
from tunedoc.trainer.rundir import read_json


def test_step_down_order_keeps_the_effective_batch_then_loss_and_checkpoints_then_cuts():
    s = MemorySettings(micro_batch=4, grad_accum=2, grad_ckpt="off", cutoff_len=512, loss_impl="plain")
    kinds = []
    while (fb := next_fallback(s)) is not None:
        assert fb.message
        kinds.append(fb.kind)
        if fb.kind == "micro_batch":
            assert fb.settings.micro_batch * fb.settings.grad_accum == s.micro_batch * s.grad_accum
        s = fb.settings
    assert kinds == ["micro_batch", "micro_batch", "loss_impl", "grad_ckpt", "grad_ckpt", "cutoff_len", "cutoff_len"]
    assert s == MemorySettings(1, 8, "offload", MIN_CUTOFF, "chunked")


def test_old_runs_boolean_checkpointing_is_read_as_on_or_off():
    assert MemorySettings(1, 1, True, 256).grad_ckpt == "on"
    assert MemorySettings(1, 1, False, 256).grad_ckpt == "off"
    assert next_fallback(MemorySettings(1, 1, True, 256)).settings.grad_ckpt == "offload"


def test_odd_micro_batch_rounds_the_accumulation_up():
    fb = next_fallback(MemorySettings(micro_batch=3, grad_accum=1, grad_ckpt="on", cutoff_len=256))
    assert fb.settings.micro_batch == 1 and fb.settings.grad_accum == 3


def _train(model, data, runs, budget, *sets):
    env = dict(os.environ, TUNEDOC_TEST_OOM_BUDGET=str(budget))
    args = ["--set", "max_steps=3", "--set", "cutoff_len=128", "--set", "lr=1e-3", *sets]
    out = subprocess.run([sys.executable, "-m", "tunedoc", "train", "--model", str(model), "--data", str(data),
                          "--profile", "qlora-min", "--runs-dir", str(runs), "--json", *args],
                         capture_output=True, text=True, timeout=180, env=env)
    return out, [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_an_oom_steps_micro_batch_down_then_turns_on_checkpointing(tiny_model_dir, identity_jsonl, tmp_path):
    # 4 rows x 128 tokens = 512 "bytes" > 150: micro_batch 4 -> 2 -> 1 (128 > 150? no: fits at 1)
    out, events = _train(tiny_model_dir, identity_jsonl, tmp_path, 150, "--set", "micro_batch=4",
                         "--set", "grad_accum=1", "--set", "grad_ckpt=false")
    assert out.returncode == 0, out.stderr[-2000:]
    warnings = [e["message"] for e in events if e["type"] == "warning" and e.get("id") == "oom-fallback"]
    assert len(warnings) == 2
    assert "micro_batch 4 -> 2, grad_accum 1 -> 2" in warnings[0]
    assert "micro_batch 2 -> 1, grad_accum 2 -> 4" in warnings[1]
    assert events[-1]["status"] == "completed"
    start = next(e for e in events if e["type"] == "start")
    assert start["micro_batch"] == 1 and start["grad_accum"] == 4
    run_dir = Path(events[-1]["adapter"]).parent
    # what worked is recorded, so --resume does not OOM its way down again
    assert read_json(run_dir / "config.json")["effective"]["micro_batch"] == 1


@pytest.mark.slow
def test_when_nothing_fits_the_run_fails_with_the_doctors_cuda_oom_id(tiny_model_dir, identity_jsonl, tmp_path):
    out, events = _train(tiny_model_dir, identity_jsonl, tmp_path, 10, "--set", "micro_batch=2",
                         "--set", "grad_ckpt=false")
    assert out.returncode == 1
    kinds = [e["kind"] for e in events if e["type"] == "warning" and e.get("id") == "oom-fallback"]
    assert kinds == ["micro_batch", "grad_ckpt", "grad_ckpt"]  # on, offload; 128 is already the minimum cutoff
    err = next(e for e in events if e["type"] == "error")
    assert err["id"] == "cuda-oom" and "out of memory" in err["message"].lower()
    assert "tunedoc fit" in err["hint"] and "expandable_segments" in err["hint"]
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    st = read_json(run_dir / "status.json")
    assert st["status"] == "failed" and st["error_id"] == "cuda-oom"


@pytest.mark.slow
def test_the_loss_and_offload_are_tried_before_the_cutoff_is_cut(tiny_model_dir, identity_jsonl, tmp_path):
    # one packed 256-token row: "memory" 256 x 0.5 (checkpointing) x 2 (full logits) = 256 > 100; chunked:
    # 128 > 100; offload: 64 fits. cutoff_len stays 256 (a cut would have been next, and it changes the data)
    out, events = _train(tiny_model_dir, identity_jsonl, tmp_path, 100, "--set", "micro_batch=1",
                         "--set", "grad_accum=2", "--set", "grad_ckpt=on", "--set", "loss_impl=plain",
                         "--set", "cutoff_len=256")
    assert out.returncode == 0, out.stderr[-2000:]
    moves = [e for e in events if e["type"] == "warning" and e.get("id") == "oom-fallback"]
    assert [e["kind"] for e in moves] == ["loss_impl", "grad_ckpt"]
    assert "loss_impl=chunked" in moves[0]["message"] and "grad_ckpt=offload" in moves[1]["message"]
    start = next(e for e in events if e["type"] == "start")
    assert start["loss_impl"] == "chunked" and start["grad_ckpt"] == "offload"
    run_dir = Path(events[-1]["adapter"]).parent
    eff = read_json(run_dir / "config.json")["effective"]
    assert eff["cutoff_len"] == 256 and eff["loss_impl"] == "chunked" and eff["grad_ckpt"] == "offload"
