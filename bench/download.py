"""Download speed: `tunedoc download` against `hf download`, same files, same local fake Hub, same run.

    .venv/bin/python bench/download.py [--mb 300] [--files 3] [--rounds 3] [--json]

Starts tests/models/fakehub.py in its own process (it serves the weight files with sendfile, so the clients are
what is measured), then for each round downloads the whole repo with each tool into a fresh cache, alternating
which goes first. Times are wall-clock of the whole command, start-up included, as a user sees it. Prints both
medians and the ratio tunedoc / hf (goal: <= 1.05). tunedoc also verifies every file's sha256; hf does not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPO = "bench/big-model"


def _bin(name: str) -> str:
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def _timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=900)
    secs = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return secs


def _snapshot_sizes(cache: Path) -> dict[str, int]:
    snaps = list((cache / f"models--{REPO.replace('/', '--')}" / "snapshots").glob("*"))
    assert len(snaps) == 1, snaps
    return {p.name: p.stat().st_size for p in snaps[0].iterdir()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=300, help="total MB of weight files served")
    ap.add_argument("--files", type=int, default=3, help="number of weight files")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tunedoc-bench-"))
    server = subprocess.Popen([sys.executable, str(ROOT / "tests/models/fakehub.py"), "--mb", str(a.mb),
                               "--files", str(a.files), "--dir", str(work / "files"), "--repo", REPO],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().strip()
        if not line.startswith("READY "):
            raise SystemExit(f"fake hub did not start: {line!r}")
        url = line.split()[1]
        env = {**os.environ, "HF_ENDPOINT": url, "HF_HOME": str(work / "home"), "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_HUB_DISABLE_UPDATE_CHECK": "1", "HF_HUB_DISABLE_XET": "1"}
        env.pop("HF_TOKEN", None)
        tools = {
            "tunedoc": lambda cache: [_bin("tunedoc"), "download", REPO, "--cache-dir", str(cache)],
            "hf": lambda cache: [_bin("hf"), "download", REPO, "--cache-dir", str(cache)],
        }
        times: dict[str, list[float]] = {k: [] for k in tools}
        sizes = {}
        for i in range(a.rounds):
            order = list(tools) if i % 2 == 0 else list(reversed(tools))
            for name in order:
                cache = work / f"cache-{name}"
                shutil.rmtree(cache, ignore_errors=True)
                times[name].append(_timed(tools[name](cache), env))
                sizes[name] = _snapshot_sizes(cache)
                shutil.rmtree(cache, ignore_errors=True)
            print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), file=sys.stderr)
        if sizes["tunedoc"] != sizes["hf"]:
            raise SystemExit(f"the tools fetched different files: {sizes}")
    finally:
        server.stdin.close()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["tunedoc"] / med["hf"]
    total = sum(sizes["tunedoc"].values())
    if a.json:
        print(json.dumps({"bytes": total, "files": len(sizes["tunedoc"]), "rounds": a.rounds, "times": times,
                          "median_s": med, "ratio": round(ratio, 3)}))
    else:
        print(f"{total / 1e6:.0f} MB in {len(sizes['tunedoc'])} files from a local fake Hub, "
              f"median of {a.rounds} rounds (wall time, start-up included):")
        for k in tools:
            print(f"  {k:<8} {med[k]:6.2f} s   {total / med[k] / 1e6:7.1f} MB/s   runs: "
                  + " ".join(f"{t:.2f}" for t in times[k]))
        print(f"  ratio tunedoc/hf = {ratio:.3f}  (goal <= 1.05)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
