"""Time to the Doctor screen's first paint and to a complete doctor (real backend), against `import textual`.

    .venv/bin/python bench/tui_startup.py [--runs 3]

Each measurement is a fresh interpreter, so imports count. Prints medians and ratios to the baseline measured in
the same run. Not a timed test: the machine's load moves the absolute numbers, the ratios much less.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BASELINE = "import textual"

APP = r"""
import time
t0 = time.perf_counter()
import asyncio, json
from tunedoc.tui.app import make_app

async def main():
    app = make_app()
    first = None
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()   # the first frame is composed and painted (headless)
        first = time.perf_counter() - t0
        screen = app.screen
        while not (screen.model.runs and not screen.model.running()):
            await pilot.pause(0.01)
        await pilot.pause()
        complete = time.perf_counter() - t0
    print(json.dumps({"first_paint": first, "complete": complete}))

asyncio.run(main())
"""


def timed(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


def app_run() -> dict[str, float]:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", APP], cwd=ROOT, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    data = json.loads(out.stdout.strip().splitlines()[-1])
    # both measured from the child's first line; add the interpreter start the baseline also pays
    start = wall - data["complete"]
    return {"first_paint": data["first_paint"] + start, "complete": data["complete"] + start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base, first, complete = [], [], []
    for i in range(args.runs):
        base.append(timed(BASELINE))
        r = app_run()
        first.append(r["first_paint"])
        complete.append(r["complete"])
        print(f"run {i + 1}/{args.runs}: import textual {base[-1]:.2f} s, first paint {first[-1]:.2f} s, "
              f"complete doctor {complete[-1]:.2f} s", file=sys.stderr)
    b, f, c = (statistics.median(x) for x in (base, first, complete))
    print(f"python -c 'import textual'   {b:6.2f} s   1.00x")
    print(f"doctor screen, first paint   {f:6.2f} s   {f / b:5.2f}x")
    print(f"doctor screen, complete      {c:6.2f} s   {c / b:5.2f}x   (includes the torch child process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
