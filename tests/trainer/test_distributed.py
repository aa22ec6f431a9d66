"""Several ranks through torchrun: two CPU processes on gloo (`--nproc 2`) train the same curve as one process with
the same global batch; a rank killed with -9 ends the run with an error naming it, and --resume continues with the
same rows; pause and stop reach every rank. Plus the launch plan (GPUs, environment) as pure functions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tunedoc.trainer.distributed import launch_env, parse_gpus, shard
from tunedoc.trainer.launch import plan_launch
from tunedoc.trainer.multi import _still_ours, report_failure, torchrun_argv


def tunedoc(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "tunedoc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


# ------------------------------------------------------------------------------------------------- the launch plan
def test_gpus_flag_counts_and_indices():
    assert parse_gpus(None, 4) == [0, 1, 2, 3] and parse_gpus("all", 2) == [0, 1]
    assert parse_gpus("2", 4) == [0, 1]  # a count
    assert parse_gpus("0,2", 4) == [0, 2] and parse_gpus("1,", 4) == [1]  # indices, nvidia-smi's numbering
    for bad, word in (("5", "has 4 GPUs"), ("0,7", "0..3"), ("0,0", "once"), ("x", "indices")):
        with pytest.raises(ValueError, match=word):
            parse_gpus(bad, 4)


def test_launch_env_pci_order_p2p_and_windows():
    env, notes = launch_env([1, 0], ["NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090"], windows=False)
    assert env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" and env["CUDA_VISIBLE_DEVICES"] == "1,0"
    assert env["NCCL_P2P_DISABLE"] == "1" and "peer-to-peer" in notes[0]
    env, _ = launch_env([0, 1], ["NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB"], windows=False)
    assert "NCCL_P2P_DISABLE" not in env  # datacenter cards talk peer to peer
    env, notes = launch_env([0, 1], ["NVIDIA GeForce RTX 3090"] * 2, windows=True)
    assert env["USE_LIBUV"] == "0" and any("gloo" in n for n in notes)


def test_plan_launch_choices_and_errors():
    cpu = plan_launch(nproc=2, gpu_names=[])
    assert cpu["nproc"] == 2 and cpu["device"] == "cpu" and cpu["env"]["CUDA_VISIBLE_DEVICES"] == ""
    two = plan_launch(gpu_names=["NVIDIA GeForce RTX 5060 Ti"] * 2, windows=False)
    assert two["nproc"] == 2 and two["gpus"] == [0, 1]  # default: every GPU
    one = plan_launch(gpus="1,", gpu_names=["A", "B"], windows=False)
    assert one["nproc"] == 1 and one["env"]["CUDA_VISIBLE_DEVICES"] == "1"
    assert plan_launch(gpu_names=[])["nproc"] == 1  # no GPU: one CPU process
    for kwargs, word in (({"gpus": "2", "gpu_names": []}, "no NVIDIA GPU"), ({"nproc": 2, "gpus": "1"}, "one of them"),
                         ({"nnodes": 2, "gpu_names": []}, "--master-addr"),
                         ({"nnodes": 2, "node_rank": 2, "master_addr": "10.0.0.1"}, "0..1")):
        with pytest.raises(ValueError, match=word):
            plan_launch(**kwargs)


def test_torchrun_command_single_and_multi_node(tmp_path):
    single = torchrun_argv({"nproc": 2}, tmp_path, resume=True, python="py")
    assert "--nproc-per-node=2" in single and "--standalone" in single and single[-1] == "--resume"
    assert single[single.index("--no-python") + 1] == "py"
    multi = torchrun_argv({"nproc": 4, "nnodes": 2, "node_rank": 1, "master_addr": "10.1.2.3", "master_port": 29400},
                          tmp_path, resume=False, python="py")
    assert {"--nnodes=2", "--node-rank=1", "--master-addr=10.1.2.3", "--master-port=29400"} <= set(multi)
    assert "--standalone" not in multi


def test_shards_are_contiguous_and_equal():
    rows = list(range(8))
    assert shard(rows, 0, 2) == [0, 1, 2, 3] and shard(rows, 1, 2) == [4, 5, 6, 7]


def test_a_failed_rank_is_named_in_the_error_event(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({"status": "running", "step": 7}))
    (run / "rank-1.error.json").write_text(json.dumps({"rank": 1, "message": "the loss became nan", "id": "nan-loss",
                                                        "hint": "lower lr"}))
    report_failure(run, 1, "exited with code 1", world=2)
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert events[0]["type"] == "error" and events[0]["rank"] == 1 and events[0]["id"] == "nan-loss"
    assert events[0]["message"].startswith("rank 1 of 2: the loss became nan")
    assert events[1]["type"] == "done" and events[1]["status"] == "failed"
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "failed" and status["failed_rank"] == 1


def test_a_launcher_whose_run_was_resumed_leaves_the_new_session_alone(tmp_path):
    # rank 0 wrote `stopped`, `--resume` started a new launcher before the old one exited: the old one must not
    # report the run as ended without its result (the new session's status says another pid)
    (tmp_path / "status.json").write_text(json.dumps({"status": "running", "pid": os.getpid()}))
    assert _still_ours(tmp_path)
    (tmp_path / "status.json").write_text(json.dumps({"status": "starting", "pid": None}))
    assert not _still_ours(tmp_path)
    (tmp_path / "status.json").write_text(json.dumps({"status": "running", "pid": os.getpid() + 1}))
    assert not _still_ours(tmp_path)


# ----------------------------------------------------------------------------------------------- real CPU ranks
STEPS = 24
COMMON = ["--profile", "qlora-min", "--json", "--set", "quant=nf4", "--set", f"max_steps={STEPS}", "--set", "lr=3e-3",
          "--set", "cutoff_len=96", "--set", "micro_batch=1", "--set", "save_every=4", "--set", "eval_split=0",
          # LoRA dropout draws random masks per rank: off, so both layouts compute the very same function
          "--set", "lora_dropout=0", "--set", "sample_every=0"]


def losses(run_dir: Path) -> dict[int, float]:
    out = {}
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e["type"] == "step":
            out[e["step"]] = e["loss"]  # a resumed step overwrites the one before the kill
    return out


def train(model, data, runs, *extra, common=None, timeout=400):
    """A run to its end (COMMON's settings, or another file's `common`); its run directory."""
    out = tunedoc("train", "--model", model, "--data", data, "--runs-dir", runs, *(common or COMMON), *extra,
                  timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    done = json.loads(out.stdout.splitlines()[-1])
    assert done["type"] == "done" and done["status"] == "completed", done
    return Path(done["adapter"]).parent


@pytest.fixture(scope="module")
def two_rank_run(tiny_model_dir, identity_jsonl, tmp_path_factory):
    runs = tmp_path_factory.mktemp("ddp-runs")
    return runs, train(tiny_model_dir, identity_jsonl, runs, "--nproc", "2", "--set", "grad_accum=2")


@pytest.mark.slow
def test_two_ranks_train_the_curve_of_one_rank_with_the_same_global_batch(two_rank_run, tiny_model_dir,
                                                                            identity_jsonl, tmp_path):
    runs, ddp = two_rank_run
    single = train(tiny_model_dir, identity_jsonl, tmp_path, "--set", "grad_accum=4")
    a, b = losses(ddp), losses(single)
    assert len(a) == len(b) == STEPS
    # the same rows per step, gradients summed in another order: float noise only
    for step in a:
        assert a[step] == pytest.approx(b[step], rel=2e-3, abs=2e-3), (step, a[step], b[step])
    assert a[STEPS] < a[1] - 0.2, "the loss must fall"
    start = next(json.loads(x) for x in (ddp / "events.jsonl").read_text().splitlines() if '"start"' in x)
    assert start["world_size"] == 2 and start["global_batch"] == 4 and "2 ranks (gloo)" in start["device"]
    step = next(json.loads(x) for x in (ddp / "events.jsonl").read_text().splitlines() if '"step"' in x)
    assert len(step["rank_peak_mem_mb"]) == 2 and all(m > 0 for m in step["rank_peak_mem_mb"])
    listed = json.loads(tunedoc("runs", "--runs-dir", runs, "--json").stdout)
    assert [r["world_size"] for r in listed] == [2]


def _rank_pid(run_dir: Path, rank: int, timeout: float = 120) -> int:
    status = json.loads((run_dir / "status.json").read_text())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in psutil.process_iter(["cmdline"]):
            try:
                cmd = p.info["cmdline"] or []
                if str(run_dir) in cmd and any(c.endswith("tunedoc.trainer.recipe") for c in cmd) \
                        and p.environ().get("RANK") == str(rank):
                    return p.pid
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        time.sleep(0.3)
    raise AssertionError(f"no rank {rank} process for {run_dir} (status {status})")


def _wait(pred, timeout=180, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _ranks_alive(run_dir: Path) -> bool:
    return any(str(run_dir) in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"]))


@pytest.mark.slow
def test_kill_9_of_one_rank_ends_the_run_and_resume_continues_with_the_same_rows(two_rank_run, tiny_model_dir,
                                                                                 identity_jsonl, tmp_path):
    _, reference = two_rank_run
    started = tunedoc("train", "--model", tiny_model_dir, "--data", identity_jsonl, "--runs-dir", tmp_path, *COMMON,
                      "--nproc", "2", "--set", "grad_accum=2", "--detach")
    assert started.returncode == 0, started.stderr
    run_dir = Path(json.loads(started.stdout)["run_dir"])
    _wait(lambda: (run_dir / "checkpoints" / "step-000004").is_dir(), what="the first checkpoint")
    os.kill(_rank_pid(run_dir, 1), signal.SIGKILL)
    _wait(lambda: _status(run_dir).get("failed_rank") == 1, what="the launcher to report the failed rank")
    assert _status(run_dir)["status"] == "failed"
    killed_at = _status(run_dir)["step"]
    assert killed_at < STEPS, "the run finished before the kill: the box is too fast for this test's timing"
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    errors = [e for e in events if e["type"] == "error"]
    assert any(e.get("rank") == 1 and "rank 1 of 2" in e["message"] and "SIGKILL" in e["message"] for e in errors), errors
    assert [e["id"] for e in errors][0] in ("rank-lost", "rank-failed"), errors  # rank 0 says why it stopped too
    _wait(lambda: not _ranks_alive(run_dir), timeout=60, what="every rank to end")

    resumed = tunedoc("train", "--resume", run_dir.name, "--runs-dir", tmp_path, "--json")  # foreground, to the end
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    start = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines() if '"start"' in x][-1]
    assert start["world_size"] == 2 and start["resumed_from_step"] >= 4
    # every step, the re-trained ones after the checkpoint included, has the loss of the uninterrupted run: the
    # step number alone fixed both ranks' rows
    curve, ref = losses(run_dir), losses(reference)
    assert sorted(curve) == sorted(ref) == list(range(1, STEPS + 1))
    for step in ref:
        assert curve[step] == pytest.approx(ref[step], rel=1e-4, abs=1e-4), (step, curve[step], ref[step])


@pytest.mark.slow
def test_pause_resume_and_stop_reach_every_rank(tiny_model_dir, identity_jsonl, tmp_path):
    started = tunedoc("train", "--model", tiny_model_dir, "--data", identity_jsonl, "--runs-dir", tmp_path, *COMMON,
                      "--nproc", "2", "--set", "max_steps=2000", "--set", "save_every=0", "--detach", "--json")
    assert started.returncode == 0, started.stderr
    run_dir = Path(json.loads(started.stdout)["run_dir"])
    _wait(lambda: _status(run_dir).get("step", 0) >= 2, what="the first steps")
    assert tunedoc("pause", run_dir.name, "--runs-dir", tmp_path).returncode == 0
    _wait(lambda: _status(run_dir).get("status") == "paused", what="pause")
    paused_at = _status(run_dir)["step"]
    time.sleep(2)
    assert _status(run_dir)["step"] == paused_at, "a step went on while paused"
    assert tunedoc("resume", run_dir.name, "--runs-dir", tmp_path).returncode == 0
    _wait(lambda: _status(run_dir).get("step", 0) > paused_at, what="resume")
    assert tunedoc("stop", run_dir.name, "--runs-dir", tmp_path).returncode == 0
    _wait(lambda: _status(run_dir).get("status") == "stopped", what="stop")
    _wait(lambda: not _ranks_alive(run_dir), timeout=60, what="every rank to end after stop")
    stopped = _status(run_dir)["step"]
    assert (run_dir / "checkpoints" / f"step-{stopped:06d}").is_dir(), "stop saves a checkpoint first"
