"""`tunedoc doctor --from` on long training logs that repeat a recognised message on every line (issue 17 item 3).

    python bench/doctor_long_log.py            # 10k and 100k lines of each message, and the ratio (linear: <= ~10)
    python bench/doctor_long_log.py --mib 50   # also one log of about 50 MiB, and a training log of that size

Each log is written to a temporary folder and read by a child `python -m tunedoc doctor --from LOG`, so the time
includes start-up, reading, parsing, the rules and the rendering a user waits for. Before the first fix a per-line
condition re-searched the whole text (5,000 lines 19 s, 20,000 lines 285 s).

Measured here (2 cores shared with other helpers' jobs, load average 1.6-2.7), after the shared pass
(doctor/reports/text.py `Report`: the text cleaned once, each distinct line read once, per-shape regex plans,
presence tests before the format parsers): 10k lines 0.15-0.17 s, 100k lines 0.21-0.32 s (ratio 1.4-1.9: start-up
dominates, a repeated line costs what one line costs); the 50 MiB log (647,269 lines) 0.6 s, was 14.6-17 s; the
47.5 MiB training log (689,606 lines) 2.4 s (3.6-4.1 s at load ~4), was 268 s for a similar one (each
`{'loss': ...}` line was a failed JSON decode that counted the lines before it). Other logs, not generated here: a
49 MiB step-counter warning (834k distinct lines) 1.8 s; a 49 MiB synthetic `pip install -v` log (400k lines,
nearly all naming packages and wheels, read line by line) 6.9 s, was 22 s.
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


def write_training_log(path: Path, mib: float) -> int:
    """A training run's output: tqdm bars (one line per \\r update), a deprecation warning every third step, a
    loss dict every tenth, then the CUDA OOM traceback that ended it. Every step's lines differ (counters, bar
    glyphs), and the dicts are `{'loss': ...}` lines that a JSON reader must try and give up on. Returns its lines."""
    n, step, size = 0, 0, 0
    with path.open("w", encoding="utf-8") as f:
        f.write("==((====))==  Unsloth 2024.8: Fast Llama patching. Transformers = 4.44.0.\n"
                "O^O/ \\_/ \\    Pytorch: 2.4.0+cu121. CUDA = 8.6. CUDA Toolkit = 12.1.\n")
        while size < mib * 2**20:
            step += 1
            bar = "\u2588" * (step // 20000 % 10) + " \u258f\u258e\u258d\u258c"[step % 5]
            chunk = (f"\r{step // 2000 % 100:3d}%|{bar:<10}| {step}/200000 "
                     f"[{step // 60:02d}:{step % 60:02d}<99:00, 1.{step % 97:02d}it/s]")
            if step % 3 == 0:
                chunk += ("\n/venv/lib/python3.10/site-packages/torch/utils/checkpoint.py:1399: FutureWarning: "
                          "`torch.cpu.amp.autocast(args...)` is deprecated. Please use "
                          "`torch.amp.autocast('cpu', args...)` instead.\n")
            if step % 10 == 0:
                chunk += f"\n{{'loss': {2 - step / 2e5:.4f}, 'grad_norm': 0.{step % 991}, 'epoch': {step / 2e5:.3f}}}\n"
            f.write(chunk)
            size += len(chunk.encode())
            n += chunk.count("\n") + chunk.count("\r")
        f.write("\nTraceback (most recent call last):\n  File \"/home/me/train.py\", line 88, in <module>\n"
                "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
                "23.69 GiB of which 1.06 GiB is free.\n")
    return n


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
        print(f"{'message':<20} {args.small:>8} lines {args.large:>8} lines  "
              f"ratio (linear: at most ~{args.large / args.small:.0f})")
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
            t = Path(d, "train.log")
            n = write_training_log(t, args.mib * 0.95)  # the bars' glyphs are 3 bytes: stay under the 50 MiB cap
            size = t.stat().st_size / 2**20
            print(f"{size:.1f} MiB training log ({n} lines, tqdm bars, a warning per step, loss dicts): "
                  f"{time_doctor(t):.2f} s")


if __name__ == "__main__":
    main()
