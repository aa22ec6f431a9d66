"""Recorded runs (tests/tui/fixtures/runs, from a real `tunedoc demo --steps 40`) and an app on them."""

from __future__ import annotations

import shutil
from pathlib import Path

from tunedoc.tui.app import make_app
from tunedoc.tui.gpu_monitor import GpuReading, HardwareSample, ProcessReading
from tunedoc.tui.train_backend import FakeHardware, TrainBackend

RUNS = Path(__file__).with_name("fixtures") / "runs"
LIVE = {"demo-running", "demo-paused"}  # their status.json is taken as is (their pids are long gone)
CPU = HardwareSample("process", [], ProcessReading(4242, 187.0, 466.0, 9, 2), "no GPU: no NVIDIA driver found")
GPU = HardwareSample("gpu", [GpuReading(0, "NVIDIA GeForce RTX 4090", 97, 18_432, 24_564, 71, 388, 450)],
                     ProcessReading(4242, 101.0, 2_900.0, 12, 16))


def copy_runs(tmp_path: Path) -> Path:
    dest = tmp_path / "runs"
    shutil.copytree(RUNS, dest)
    return dest


def train_app(runs: Path = RUNS, attach: str | None = None, hardware: HardwareSample = CPU, start: str = "train",
              gpu_names: list[str] | None = None):
    """`gpu_names`: the machine's GPUs for the start form (default none: the form offers CPU processes)."""
    backend = TrainBackend(runs, attach=runs / attach if attach else None, alive=LIVE,
                           hardware=FakeHardware(hardware), poll_s=0.05,
                           gpu_names=[] if gpu_names is None else gpu_names)
    return make_app(start=start, train_backend=backend, clock=lambda: 1000.0), backend


async def drawn(pilot, n: int = 8) -> None:
    """Let the tailer read, the handlers fold and the 2 Hz redraw run."""
    for _ in range(n):
        await pilot.pause(0.1)
