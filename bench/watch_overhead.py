"""Does watching a run slow it down, and does the Train screen keep up? Both measured in this run.

1. Throughput: the demo trained twice with the same settings, once unwatched and once with the Train screen
   (headless Textual app, real tailer, real hardware sampling) attached to it; prints mean tokens/s of each and
   the ratio (goal: >= 0.97).
2. Lag: a synthetic writer appends step events at 200 events/s for --seconds while the Train screen follows them;
   prints the lag (now minus the newest event the screen has drawn) at the start and at the end (goal: flat).

    .venv/bin/python bench/watch_overhead.py [--steps 600] [--rounds 4] [--seconds 20] [--skip-train]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def step_tokens_per_s(run_dir: Path) -> list[float]:
    from tunedoc.trainer.events import read_events

    events, _ = read_events(run_dir / "events.jsonl")
    steps = [e["tokens_per_s"] for e in events if e["type"] == "step"]
    # skip the first third: warm-up, and in the watched arm the app's own start-up (imports, CSS, first layout),
    # which overlaps the run's first steps; what is compared is the steady state of watching
    return steps[len(steps) // 3:]


async def watch(run_dir: Path, until_done: bool, seconds: float | None = None, lag_probe=None) -> None:
    from tunedoc.tui.app import make_app
    from tunedoc.tui.train_backend import TrainBackend

    app = make_app(start="train", train_backend=TrainBackend(run_dir.parent, attach=run_dir))
    async with app.run_test(size=(120, 40)) as pilot:
        t0 = time.time()
        while True:
            await pilot.pause(0.25)
            screen = app.screen
            if lag_probe is not None:
                lag_probe(screen)
            if until_done and screen.view.done is not None:
                break
            if seconds is not None and time.time() - t0 > seconds:
                break


def train_once(runs: Path, steps: int, watched: bool) -> Path:
    from tunedoc.trainer.demo import start_demo

    handle = start_demo("Tuna", "tunedoc", runs, steps, detach=True)
    if watched:
        asyncio.run(watch(handle.run_dir, until_done=True))
    handle.process.wait()
    return handle.run_dir


def lag_test(seconds: float, rate: float) -> tuple[float, float, int]:
    from tunedoc.trainer.events import EventWriter
    from tunedoc.trainer.rundir import write_json

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "synthetic"
        run_dir.mkdir()
        write_json(run_dir / "config.json", {"model": "synthetic", "profile": {"name": "none"}})
        write_json(run_dir / "status.json", {"status": "completed"})
        stop = threading.Event()
        written = [0]

        def writer() -> None:
            with EventWriter(run_dir / "events.jsonl") as w:
                w.emit("start", run_id="synthetic", model="synthetic", profile="none", total_steps=10**6, device="cpu")
                t0, i = time.perf_counter(), 0
                while not stop.is_set():
                    i += 1
                    w.emit("step", step=i, loss=5 / (1 + i / 1000), lr=1e-4, tokens_per_s=1000, samples_per_s=4,
                           elapsed_s=i / rate, epoch=i / 1000)
                    written[0] = i
                    time.sleep(max(0.0, t0 + i / rate - time.perf_counter()))

        lags: list[tuple[float, float]] = []

        def probe(screen) -> None:
            last = screen.view.last
            if last and written[0]:
                lags.append((time.time(), time.time() - last["t"]))

        th = threading.Thread(target=writer, daemon=True)
        th.start()
        asyncio.run(watch(run_dir, until_done=False, seconds=seconds, lag_probe=probe))
        stop.set()
        th.join(2)
    n = max(1, len(lags) // 5)
    start = statistics.mean(l for _, l in lags[:n])
    end = statistics.mean(l for _, l in lags[-n:])
    return start, end, written[0]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=600,
                   help="demo steps per training run (default 600: long enough that start-up noise does not dominate)")
    p.add_argument("--seconds", type=float, default=20, help="length of the 200 events/s lag test (default 20)")
    p.add_argument("--rate", type=float, default=200, help="synthetic events per second (default 200)")
    p.add_argument("--rounds", type=int, default=4,
                   help="unwatched/watched pairs, interleaved so machine noise hits both sides (default 4: on a "
                        "shared 2-core box run-to-run noise is +-10 %%, and 2 pairs cannot resolve a 3 %% goal)")
    p.add_argument("--skip-train", action="store_true", help="only the lag test")
    args = p.parse_args()

    start, end, n = lag_test(args.seconds, args.rate)
    print(f"lag at {args.rate:.0f} events/s over {args.seconds:.0f}s ({n} events): start {start:.3f}s, "
          f"end {end:.3f}s, end/start {end / start:.2f}")
    if args.skip_train:
        return 0
    unwatched_steps: list[float] = []
    watched_steps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)
        train_once(runs, 3, watched=False)  # builds the demo model once, outside the measurement
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}: the demo unwatched, then with the Train screen watching...",
                  file=sys.stderr, flush=True)
            unwatched_steps += step_tokens_per_s(train_once(runs, args.steps, watched=False))
            watched_steps += step_tokens_per_s(train_once(runs, args.steps, watched=True))
    # per-step tokens/s is noisy on a shared machine: compare medians over every measured step
    base, watched = statistics.median(unwatched_steps), statistics.median(watched_steps)
    print(f"throughput (median of {len(unwatched_steps)} / {len(watched_steps)} steps): unwatched {base:,.0f} tok/s, "
          f"watched {watched:,.0f} tok/s, ratio {watched / base:.3f} (goal >= 0.97)")
    print(json.dumps({"lag_start_s": start, "lag_end_s": end, "tokens_per_s_unwatched": base,
                      "tokens_per_s_watched": watched, "ratio": watched / base}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
