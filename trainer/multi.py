"""A run on several processes: `python -m tunedoc.trainer.multi RUN_DIR [--resume]` runs torchrun over the recipe.

This process is the run's process (detached like a one-process run, its output in trainer.log). It hands the
launch to torchrun itself (`torch.distributed.run`, the launcher PyTorch ships: rendezvous, one worker per GPU or
per `--nproc`, and every worker stopped when one fails), then reads what happened: when a rank other than 0 failed,
or rank 0 died before it could write its own `done` event, it writes the run's `error` event naming the rank, the
`done` event and status.json, so no run is left looking alive.

config.json's "launch" says how many processes and where:
    {"nproc": 2, "gpus": "0,1" | null, "nnodes": 1, "node_rank": 0, "master_addr": null, "master_port": 29500}
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tunedoc.child import python_m
from tunedoc.trainer.distributed import error_file
from tunedoc.trainer.events import EventWriter
from tunedoc.trainer.launch import world_size
from tunedoc.trainer.rundir import CONFIG, EVENTS, STATUS, read_json, redact, update_status


def torchrun_argv(launch: dict, run_dir: Path, resume: bool, python: str = sys.executable) -> list[str]:
    """torchrun's own command line for this run (printed to trainer.log, so a person can run it by hand)."""
    nproc = int(launch.get("nproc") or 1)
    nnodes = int(launch.get("nnodes") or 1)
    argv = [f"--nproc-per-node={nproc}", "--max-restarts=0", "--monitor-interval=0.5"]
    if nnodes > 1:
        argv += [f"--nnodes={nnodes}", f"--node-rank={int(launch.get('node_rank') or 0)}",
                 f"--master-addr={launch['master_addr']}", f"--master-port={int(launch.get('master_port') or 29500)}"]
    else:
        argv += ["--standalone"]
    argv += ["--no-python", *python_m("tunedoc.trainer.recipe", str(run_dir), python=python)]
    return argv + (["--resume"] if resume else [])


def _root_failure(err) -> tuple[int, str]:
    """(global rank, how it ended) of the failure that came first."""
    failures = sorted(err.failures.items(), key=lambda kv: kv[1].timestamp)
    rank, f = failures[0]
    how = f"was killed by {f.signal_name()}" if f.exitcode < 0 else f"exited with code {f.exitcode}"
    return rank, how


def report_failure(run_dir: Path, rank: int, how: str, world: int) -> None:
    """Write the error (and, if rank 0 could not, the done event) for a run that a failed rank ended."""
    status = read_json(run_dir / STATUS)
    info = read_json(error_file(run_dir, rank)) if error_file(run_dir, rank).is_file() else {}
    if rank == 0 and status.get("status") == "failed":
        return  # rank 0 failed and said why itself
    message = (f"rank {rank} of {world}: {info['message']}" if info.get("message")
               else f"rank {rank} of {world} {how}; the other ranks were stopped with it")
    error_id = info.get("id") or "rank-failed"
    hint = info.get("hint") or (f"trainer.log has rank {rank}'s output; checkpoints saved so far are intact: "
                                f"`tunedoc train --resume {run_dir.name}` continues from the last one")
    events = EventWriter(run_dir / EVENTS)
    events.emit("error", message=redact(message), id=error_id, hint=hint, rank=rank)
    fields = {"status": "failed", "error": redact(message), "error_id": error_id, "hint": hint, "failed_rank": rank}
    if status.get("status") != "failed":  # rank 0 never got to write its done event
        events.emit("done", status="failed", final_loss=None, steps=status.get("step", 0),
                    elapsed_s=status.get("elapsed_s"), adapter=None, memory=None)
    events.close()
    update_status(run_dir, **fields)


def _still_ours(run_dir: Path) -> bool:
    """Whether status.json still names this launcher: once rank 0 wrote `stopped` (or `failed`) a resume may start
    the next session before this process is gone, and this one must not write over the new session's status."""
    return read_json(run_dir / STATUS).get("pid") == os.getpid()  # this launcher wrote its pid when it started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tunedoc.trainer.multi", description="Run one tunedoc run on several "
                                 "processes through torchrun.")
    ap.add_argument("run_dir")
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir)
    launch = (read_json(run_dir / CONFIG) or {}).get("launch") or {}
    import psutil

    # this process stands for the run: it lives as long as any rank does (status.json's pid is what `runs` checks)
    update_status(run_dir, status="running", pid=os.getpid(), pid_started=psutil.Process().create_time(),
                  error=None, error_id=None, hint=None, failed_rank=None)
    for f in run_dir.glob("rank-*.error.json"):
        f.unlink(missing_ok=True)
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    cmd = torchrun_argv(launch, run_dir, args.resume)
    print("torchrun " + " ".join(cmd), flush=True)
    world = world_size(launch)
    started = time.time()
    try:
        torchrun(cmd)
    except ChildFailedError as e:
        rank, how = _root_failure(e)
        print(f"rank {rank} {how} ({time.time() - started:.0f} s after the start)", flush=True)
        if _still_ours(run_dir):
            report_failure(run_dir, rank, how, world)
        return 1
    except KeyboardInterrupt:
        return 130
    if not _still_ours(run_dir):  # a `--resume` started a new session as soon as the ranks had stopped: its run now
        return 0
    if read_json(run_dir / STATUS).get("status") in ("running", "paused", "starting"):  # ended without a word
        report_failure(run_dir, 0, "ended without writing its result", world)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
