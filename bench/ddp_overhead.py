"""What data parallelism costs per rank: the demo on 2 CPU ranks (torchrun, gloo) against 1 rank, in this run.

Each rank of the 2-rank run trains with 1 thread (torchrun's default OMP_NUM_THREADS=1); the baseline is 1 rank with
1 thread too, so the ratio isolates what DDP adds (the gradient all-reduce, the control and metric collectives
between steps) from how threads share the cores. The 2-rank run does the same global batch per step as the 1-rank
run (grad_accum halved), so both train the same curve.

    .venv/bin/python bench/ddp_overhead.py [--steps 300] [--rounds 2] [--no-fsdp]

Prints median tokens/s of the 1-rank run, of the 2-rank run (global) and per rank, and per rank / 1 rank
(1.0 = free; on 2 cores two 1-thread ranks have a core each, so below 1 is the communication cost). The same for
2 ranks with `--strategy fsdp` (each layer's weights all-gathered before it runs, gradients reduce-scattered per
micro-batch), unless --no-fsdp.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def tokens_per_s(run_dir: Path) -> list[float]:
    from tunedoc.trainer.events import read_events

    events, _ = read_events(run_dir / "events.jsonl")
    steps = [e["tokens_per_s"] for e in events if e["type"] == "step"]
    return steps[len(steps) // 3:]  # steady state: skip warm-up


def run(runs: Path, steps: int, nproc: int | None, strategy: str = "ddp") -> Path:
    from tunedoc.trainer.demo import DEMO_PROFILE, demo_sets, prepare_demo
    from tunedoc.trainer.launch import plan_launch, start_run

    model_dir, data = prepare_demo("Tuna", "tunedoc", runs)
    # the demo's global batch, split over the ranks; no samples (rank 0 alone generates them)
    sets = demo_sets(steps) + ["sample_every=0", "micro_batch=2", f"grad_accum={4 // (nproc or 1)}",
                               f"strategy={strategy}"]
    launch = plan_launch(nproc=nproc) if nproc else None
    handle = start_run(str(model_dir), str(data), DEMO_PROFILE, sets, runs, f"{strategy}{nproc or 1}", "openai",
                       detach=True, launch=launch)
    handle.process.wait()
    return handle.run_dir


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2, help="1-rank / 2-rank pairs, interleaved (default 2)")
    p.add_argument("--no-fsdp", action="store_true", help="skip the 2-rank fsdp runs")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"  # the same thread count per rank on both sides
    one: list[float] = []
    two: list[float] = []
    sharded: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}: 1 rank, then 2 ranks (ddp"
                  + ("" if args.no_fsdp else ", then fsdp") + ")...", file=sys.stderr, flush=True)
            one += tokens_per_s(run(runs, args.steps, None))
            two += tokens_per_s(run(runs, args.steps, 2))
            if not args.no_fsdp:
                sharded += tokens_per_s(run(runs, args.steps, 2, "fsdp"))
    base, both = statistics.median(one), statistics.median(two)
    per_rank = both / 2
    print(f"1 rank: {base:,.0f} tok/s; 2 ranks: {both:,.0f} tok/s in all, {per_rank:,.0f} per rank; "
          f"per rank / 1 rank = {per_rank / base:.2f}; speed-up {both / base:.2f}x")
    out = {"one_rank_tok_s": base, "two_ranks_tok_s": both, "per_rank_ratio": per_rank / base,
           "speedup": both / base}
    if sharded:
        fsdp = statistics.median(sharded)
        print(f"2 ranks fsdp: {fsdp:,.0f} tok/s in all, {fsdp / 2:,.0f} per rank; per rank / 1 rank = "
              f"{fsdp / 2 / base:.2f}; fsdp / ddp = {fsdp / both:.2f}")
        out.update(fsdp_tok_s=fsdp, fsdp_per_rank_ratio=fsdp / 2 / base, fsdp_vs_ddp=fsdp / both)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
