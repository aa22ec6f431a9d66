"""`tunedoc doctor --from` on long training logs that repeat a recognised message on every line (issue 17 item 3).

    python bench/doctor_long_log.py            # 10k and 100k lines of each message, and the ratio (linear: ~10)
    python bench/doctor_long_log.py --mib 50   # also one log of about 50 MiB

Each log is written to a temporary folder and read by a child `python -m tunedoc doctor --from LOG`, so the time
includes start-up, reading, parsing, the rules and the rendering a user waits for. Before the fix a per-line
condition re-searched the whole text (5,000 lines 19 s, 20,000 lines 285 s).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MESSAGES = {
    "capability warning": "UserWarning: Found GPU0 NVIDIA GeForce GTX 1080 which is of cuda capability 6.1.",
    "cpu build": "step {i}: UserWarning: Torch not compiled with CUDA enabled",
    "oom": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "mig assert": "RuntimeError: device >= 0 && device < num_gpus INTERNAL ASSERT FAILED (MIG enabled)",
}
ROOT = Path(__file__).resolve().parent.parent


def write_log(path: Path, message: str, lines: int) -> None:
    with path.open("w") as f:
        for i in range(lines):
            f.write(message.format(i=i) + "\n")


def time_doctor(path: Path) -> float:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "tunedoc", "doctor", "--from", str(path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=3600)
    dt = time.perf_counter() - t
    if r.returncode not in (0, 1):
        raise SystemExit(f"doctor failed on {path.name}: {r.stderr.strip()[-500:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=100_000)
    ap.add_argument("--mib", type=float, default=0, help="also time one log of about this many MiB")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        print(f"{'message':<20} {args.small:>8} lines {args.large:>8} lines  ratio (linear ~{args.large / args.small:.0f})")
        for name, msg in MESSAGES.items():
            a, b = Path(d, "a.log"), Path(d, "b.log")
            write_log(a, msg, args.small)
            write_log(b, msg, args.large)
            ta, tb = time_doctor(a), time_doctor(b)
            print(f"{name:<20} {ta:>12.2f} s {tb:>12.2f} s  {tb / ta:6.1f}")
        if args.mib:
            msg = MESSAGES["capability warning"]
            n = int(args.mib * 2**20 / (len(msg) + 1))
            p = Path(d, "big.log")
            write_log(p, msg, n)
            size = p.stat().st_size / 2**20
            print(f"{size:.1f} MiB ({n} lines): {time_doctor(p):.2f} s")


if __name__ == "__main__":
    main()
