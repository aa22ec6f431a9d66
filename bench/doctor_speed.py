"""How long `tunedoc doctor --json` takes against what users run today to describe a machine in an issue:
`python -m torch.utils.collect_env` followed by `python -m bitsandbytes`, measured in the same run.

    .venv/bin/python bench/doctor_speed.py [--rounds 3] [--python PATH]

Each round runs both sides (order alternating, so disk caches favour neither) and the medians are compared.
Goal: ratio < 0.6. It also counts how many facts each side reports: for tunedoc, the known (non-null, non-empty)
leaf values of its facts plus its findings; for the baseline, the `key: value` lines whose value says something
(not "N/A", "None", "Could not collect").
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time


def timed(argv: list[str], timeout: float = 300) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - t0, proc


def count_leaves(obj) -> int:
    if isinstance(obj, dict):
        return sum(count_leaves(v) for k, v in obj.items() if k != "probes")
    if isinstance(obj, list):
        return sum(count_leaves(v) for v in obj) if obj else 0
    return 0 if obj in (None, "") else 1


EMPTY = re.compile(r"^(n/?a|none|could not collect|unknown|-)?$", re.I)


def count_lines(text: str) -> int:
    n = 0
    for line in text.splitlines():
        if ":" in line:
            key, _, value = line.partition(":")
            if key.strip() and not EMPTY.match(value.strip()):
                n += 1
        elif re.match(r"^\s*\[(pip3?|conda)\]\s+\S+", line):  # collect_env's package lines
            n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--python", default=sys.executable, help="the interpreter both sides run in")
    args = ap.parse_args()
    py = args.python

    ours, theirs = [], []
    facts_ours = facts_theirs = 0
    for r in range(args.rounds):
        sides = ["ours", "theirs"] if r % 2 == 0 else ["theirs", "ours"]
        for side in sides:
            if side == "ours":
                dt, proc = timed([py, "-m", "tunedoc", "doctor", "--json"])
                if proc.returncode not in (0, 1):
                    print(f"tunedoc doctor --json failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}",
                          file=sys.stderr)
                    return 2
                data = json.loads(proc.stdout)
                facts_ours = count_leaves(data["facts"]) + len(data["findings"])
                ours.append(dt)
            else:
                dt1, p1 = timed([py, "-m", "torch.utils.collect_env"])
                dt2, p2 = timed([py, "-m", "bitsandbytes"])
                facts_theirs = count_lines(p1.stdout) + count_lines(p2.stdout)
                theirs.append(dt1 + dt2)
        print(f"round {r + 1}: tunedoc doctor --json {ours[-1]:.2f} s; collect_env + bitsandbytes "
              f"{theirs[-1]:.2f} s", file=sys.stderr)

    a, b = statistics.median(ours), statistics.median(theirs)
    ratio = a / b
    print(f"tunedoc doctor --json:                                   {a:6.2f} s  ({facts_ours} facts and findings)")
    print(f"python -m torch.utils.collect_env + python -m bitsandbytes: {b:6.2f} s  ({facts_theirs} facts)")
    print(f"ratio: {ratio:.2f} (goal < 0.60: {'met' if ratio < 0.6 else 'NOT met'}), medians of {args.rounds} rounds")
    return 0 if ratio < 0.6 else 1


if __name__ == "__main__":
    sys.exit(main())
