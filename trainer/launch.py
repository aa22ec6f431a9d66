"""Start a training run as its own process, steer it, and list runs. Imported by the TUI: no torch here.

    handle = start_run("path/to/model", "data.jsonl", "qlora-min", ["max_steps=100"], "runs", None)
    send_control(handle.run_dir, "stop")
    for info in list_runs("runs"): ...

The child is `python -m tunedoc.trainer.recipe RUN_DIR` with stdout/stderr going to RUN_DIR/trainer.log. Detached, it
survives the terminal closing and SSH dropping: on POSIX it gets its own session (no SIGHUP from the terminal); on
Windows it is created with DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW. No fork, no symlinks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tunedoc.child import python_m
from tunedoc.trainer import control
from tunedoc.trainer.rundir import (
    CONFIG,
    LOG,
    RunInfo,
    default_runs_dir,
    list_runs,
    new_run_id,
    read_json,
    redact,
    resolve_run,
    run_status,
    update_status,
    write_json,
)

__all__ = [
    "RunHandle", "RunInfo", "start_run", "resume_run", "send_control", "list_runs", "run_status", "resolve_run",
    "default_runs_dir", "build_config",
]


@dataclass
class RunHandle:
    run_id: str
    run_dir: Path
    pid: int
    process: subprocess.Popen | None = None  # set for runs started by this process (foreground `train` waits on it)


def build_config(model: str, data: str, profile_name_or_path: str | None, sets: list[str] | None,
                 fmt: str = "auto", name: str | None = None) -> dict:
    """The resolved run configuration written to config.json. Raises ProfileError / FileNotFoundError with
    messages that name the problem; nothing here needs torch."""
    from tunedoc.profiles.profile import Profile, load_profile

    profile = load_profile(profile_name_or_path) if profile_name_or_path else Profile(name="default")
    if sets:
        name_before = profile.name
        profile = profile.with_overrides(sets)
        profile.name = name_before
    model_s = str(model)
    if Path(model_s).exists():
        model_s = str(Path(model_s).resolve())
    data_p = Path(data)
    if not data_p.exists():
        raise FileNotFoundError(f"data {data!r} does not exist; pass a .json/.jsonl file or a directory with "
                                "dataset_info.json")
    return redact({
        "model": model_s,
        "data": str(data_p.resolve()),
        "format": fmt,
        "name": name,
        "profile": profile.to_dict(),
        "sets": list(sets or []),
        "created": time.time(),
        "tunedoc": _tunedoc_version(),
        "python": sys.executable,
    })


def plan_launch(gpus: str | None = None, nproc: int | None = None, nnodes: int = 1, node_rank: int = 0,
                master_addr: str | None = None, master_port: int = 29500,
                gpu_names: list[str] | None = None, windows: bool = os.name == "nt") -> dict:
    """How many processes a run gets and on which devices (config.json's "launch"). ValueError names a bad choice.

    `nproc` N: N processes on the CPU (gloo), to try several ranks without GPUs. Otherwise one process per GPU of
    `gpus` (all|N|0,2; default: every GPU NVML sees). Several nodes: each node runs the same command with its own
    `node_rank`, and torchrun's rendezvous at master_addr:master_port joins them."""
    from tunedoc.trainer.distributed import launch_env, parse_gpus, visible_gpus

    if nnodes < 1 or not 0 <= node_rank < nnodes:
        raise ValueError(f"--node-rank {node_rank} with --nnodes {nnodes}: node ranks are 0..{nnodes - 1}")
    if nnodes > 1 and not master_addr:
        raise ValueError("--nnodes > 1 needs --master-addr (the address of node 0, reachable from every node)")
    nodes = {"nnodes": nnodes, "node_rank": node_rank, "master_addr": master_addr, "master_port": master_port}
    if nproc is not None:
        if nproc < 1:
            raise ValueError(f"--nproc {nproc}: at least 1")
        if gpus not in (None, ""):
            raise ValueError("--nproc runs CPU processes; --gpus picks GPUs: use one of them")
        env, notes = launch_env(None, [], windows)
        env["CUDA_VISIBLE_DEVICES"] = ""  # CPU ranks, even where a GPU is present
        return {"nproc": nproc, "gpus": None, "device": "cpu", **nodes, "env": env, "notes": notes}
    names = visible_gpus() if gpu_names is None else gpu_names
    if not names:
        if gpus not in (None, "", "all"):
            raise ValueError(f"--gpus {gpus}: NVML sees no NVIDIA GPU here (see `tunedoc doctor`); "
                             "--nproc N runs N CPU processes instead")
        return {"nproc": 1, "gpus": None, "device": "cpu", **nodes, "env": {}, "notes": []}
    ids = parse_gpus(gpus, len(names))
    env, notes = launch_env(ids, names, windows)
    return {"nproc": len(ids), "gpus": ids, "device": "cuda", **nodes, "env": env, "notes": notes,
            "gpu_names": [names[i] for i in ids]}


def resolve_strategy(launch: dict, config: dict, gpu_gib: float | None = None) -> dict:
    """`launch` with "strategy" (ddp | fsdp) for a run of several processes: the profile's strategy, auto decided
    by the estimator (profiles/multi.py: ddp when the model fits each GPU whole, fsdp when only its shards fit; ddp
    for CPU processes). `gpu_gib`: the smallest card's memory (default: NVML's figure for the chosen GPUs). The
    reason goes to the launch notes (trainer.log's first lines)."""
    if world_size(launch) <= 1:
        return launch
    from tunedoc.profiles.multi import choose_strategy
    from tunedoc.profiles.profile import Profile

    profile = Profile.from_dict(config["profile"])
    est = ram_gib = None
    if profile.strategy in ("auto", "fsdp") and launch.get("device") == "cuda":
        from tunedoc.trainer.distributed import gpu_memory_gib

        if gpu_gib is None:
            sizes = gpu_memory_gib(launch.get("gpus") or [])
            gpu_gib = min(sizes) if sizes else None
        try:
            from tunedoc.profiles.archs import load_config
            from tunedoc.profiles.estimate import estimate

            est = estimate(load_config(config["model"]), profile)
        except Exception:  # noqa: BLE001 - an architecture the estimator does not know: auto falls back to ddp
            est = None
        try:  # fsdp's low-memory load reads the whole model into rank 0's CPU RAM (this machine's, node 0)
            import psutil

            ram_gib = psutil.virtual_memory().total / 2**30
        except Exception:  # noqa: BLE001 - unknown RAM: not checked
            ram_gib = None
    # FSDP shards over every rank of every node
    strategy, why = choose_strategy(profile.strategy, est, world_size(launch), gpu_gib,
                                    launch.get("device") or "cpu", profile.quant, ram_gib)
    return {**launch, "strategy": strategy, "notes": [*(launch.get("notes") or []), why]}


def world_size(launch: dict | None) -> int:
    launch = launch or {}
    return int(launch.get("nproc") or 1) * int(launch.get("nnodes") or 1)


def start_run(model: str, data: str, profile_name_or_path: str | None, sets: list[str] | None,
              runs_dir: str | os.PathLike | None, name: str | None, fmt: str = "auto",
              python: str | None = None, detach: bool = True, launch: dict | None = None,
              extra: dict | None = None) -> RunHandle:
    """Create `runs_dir/<run-id>/` with config.json and start the trainer in its own process.

    Returns at once. `runs_dir` None means `default_runs_dir()`. `python` is the interpreter that trains (default:
    this one). `detach=False` keeps the child in this terminal's process group so Ctrl-C reaches it (foreground
    `tunedoc train`); it still logs to trainer.log and writes events. `extra`: more config.json keys (e.g.
    "llamafactory": the config and data set names a run came from, for `export --llamafactory`)."""
    name = redact(name) if name else name
    config = build_config(model, data, profile_name_or_path, sets, fmt, name)
    config.update(extra or {})
    root = (Path(runs_dir) if runs_dir is not None else default_runs_dir()).resolve()
    root.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id(model, name, root)
    run_dir = root / run_id
    run_dir.mkdir()
    config["run_id"] = run_id
    config["launch"] = resolve_strategy(launch or plan_launch(gpu_names=[]), config)
    write_json(run_dir / CONFIG, config)
    return _spawn(run_dir, [], python, detach)


def resume_run(run_dir: str | os.PathLike, python: str | None = None, detach: bool = True) -> RunHandle:
    """Continue a stopped, failed or killed run from its last checkpoint, in a new process."""
    run_dir = Path(run_dir).resolve()
    status = run_status(run_dir)
    if status.get("status") in ("starting", "running", "paused"):
        raise RuntimeError(f"run {run_dir.name} is still {status['status']} (pid {status.get('pid')}); "
                           f"`tunedoc resume {run_dir.name}` un-pauses it, `tunedoc stop {run_dir.name}` stops it")
    if status.get("status") == "completed":
        raise RuntimeError(f"run {run_dir.name} already completed all {status.get('total_steps')} steps; to train "
                           "longer start a new run (e.g. with --set max_steps=N)")
    python = python or read_json(run_dir / CONFIG).get("python") or sys.executable
    return _spawn(run_dir, ["--resume"], python, detach)


def _spawn(run_dir: Path, extra: list[str], python: str | None, detach: bool) -> RunHandle:
    python = python or sys.executable
    control.clear(run_dir)
    launch = read_json(run_dir / CONFIG).get("launch") or {}
    multi = world_size(launch) > 1
    update_status(run_dir, status="starting", pid=None, started=time.time(), world_size=world_size(launch))
    env = dict(os.environ)
    env.update(launch.get("env") or {})
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    kwargs: dict = {}
    if detach:
        if os.name == "nt":
            kwargs["creationflags"] = (subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
                                       | subprocess.CREATE_NO_WINDOW)
        else:
            kwargs["start_new_session"] = True
    log = open(run_dir / LOG, "ab")
    for note in launch.get("notes") or []:
        log.write(f"{note}\n".encode())
    log.flush()
    try:
        proc = subprocess.Popen(
            python_m("tunedoc.trainer.multi" if multi else "tunedoc.trainer.recipe", str(run_dir), *extra,
                     python=python),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(run_dir.parent),
            close_fds=True, **kwargs,
        )
    except OSError as e:
        update_status(run_dir, status="failed", error=f"could not start {python}: {e}")
        raise RuntimeError(f"could not start the trainer with {python}: {e}") from e
    finally:
        log.close()
    return RunHandle(run_id=run_dir.name, run_dir=run_dir, pid=proc.pid, process=proc)


def send_control(run_dir: str | os.PathLike, action: str) -> Path:
    """Ask a run to save | pause | resume | stop. Raises RuntimeError when the run is not active (the request
    would otherwise sit unread), ValueError for an unknown action."""
    run_dir = Path(run_dir)
    status = run_status(run_dir)
    if status.get("status") not in ("starting", "running", "paused"):
        extra = f" ({status['error']})" if status.get("error") else ""
        hint = f"; `tunedoc train --resume {run_dir.name}` continues it" if status.get("status") != "completed" else ""
        raise RuntimeError(f"run {run_dir.name} is {status.get('status')}{extra}, not running: nothing to "
                           f"{action}{hint}")
    return control.request(run_dir, action)


def _tunedoc_version() -> str:
    try:
        from tunedoc import __version__

        return __version__
    except Exception:  # pragma: no cover
        return "?"
