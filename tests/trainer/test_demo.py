"""`tunedoc demo`: a tiny model learns a name with 4-bit QLoRA on the CPU, and `tunedoc chat` says it."""

import json
import subprocess
import sys
import time

import pytest


def tunedoc(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "tunedoc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_demo_teaches_the_name_and_chat_answers_with_it(tmp_path):
    t0 = time.time()
    out = tunedoc("demo", "--headless", "--identity", "Marlin", "--runs-dir", tmp_path, "--json")
    took = time.time() - t0
    assert out.returncode == 0, out.stderr[-3000:]
    assert took < 180, f"the demo must finish in under 3 minutes on 2 cores, took {took:.0f} s"
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    start = next(e for e in events if e["type"] == "start")
    assert start["quant"] == "nf4", "the demo is a 4-bit QLoRA run"
    steps = [e for e in events if e["type"] == "step"]
    assert steps[-1]["loss"] < steps[0]["loss"] / 2
    assert events[-1]["status"] == "completed"
    run_id = start["run_id"]
    assert "tunedoc chat " + run_id in out.stderr

    chat = tunedoc("chat", run_id, "--runs-dir", tmp_path, "--prompt", "Who are you?")
    assert chat.returncode == 0, chat.stderr[-2000:]
    assert "Marlin" in chat.stdout, chat.stdout
    # the model and data are kept out of the run listing
    listed = json.loads(tunedoc("runs", "--runs-dir", tmp_path, "--json").stdout)
    assert [r["run_id"] for r in listed] == [run_id]
