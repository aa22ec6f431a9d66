"""What the Train and Runs screens call: start, steer, list and read runs; check data; sample hardware.

No torch, no transformers: the data check and export run `tunedoc` in a child process (timeout, JSON back).
Tests construct `TrainBackend(runs_dir=FIXTURES, alive={...}, hardware=FakeHardware(...))` so that recorded runs
read as live and snapshots do not depend on this machine.
"""

from __future__ import annotations

from tunedoc.child import tunedoc_argv

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from tunedoc.trainer import launch
from tunedoc.trainer.rundir import ACTIVE, RunInfo, default_runs_dir, list_runs, read_json, run_info, run_status
from tunedoc.tui.gpu_monitor import HardwareMonitor, HardwareSample

DATA_CHECK_TIMEOUT_S = 180


class TrainBackend:
    def __init__(self, runs_dir: str | Path | None = None, attach: str | Path | None = None, *,
                 alive: set[str] | None = None, hardware: Any = None, python: str | None = None,
                 poll_s: float = 0.5, gpu_names: list[str] | None = None) -> None:
        self.runs_dir = Path(runs_dir) if runs_dir is not None else default_runs_dir()
        self.attach = Path(attach) if attach is not None else None  # the run the Train screen opens on
        self.alive = alive  # tests: run ids whose status.json is taken as is (no liveness check)
        self._hardware = hardware
        self.python = python or sys.executable
        self.poll_s = poll_s
        self._gpu_names = gpu_names  # tests inject a machine's GPUs; None: ask NVML (once)

    # --- reading runs ----------------------------------------------------------------------------------------
    def status(self, run_dir: Path) -> dict[str, Any]:
        if self.alive is not None and Path(run_dir).name in self.alive:
            return read_json(Path(run_dir) / "status.json")
        return run_status(run_dir)

    def runs(self) -> list[RunInfo]:
        infos = list_runs(self.runs_dir)
        if self.alive is not None:
            for info in infos:
                if info.run_id in self.alive:
                    st = read_json(Path(info.run_dir) / "status.json")
                    info.status, info.error = st.get("status", info.status), None
        return infos

    def info(self, run_dir: Path) -> RunInfo:
        return run_info(run_dir)

    def config(self, run_dir: Path) -> dict[str, Any]:
        return read_json(Path(run_dir) / "config.json")

    def is_active(self, status: dict[str, Any]) -> bool:
        return status.get("status") in ACTIVE

    # --- starting and steering -------------------------------------------------------------------------------
    def gpu_names(self) -> list[str]:
        """This machine's NVIDIA GPUs in nvidia-smi's order ([] without a driver). The first call asks NVML:
        call it from a thread worker."""
        if self._gpu_names is None:
            from tunedoc.trainer.distributed import visible_gpus

            self._gpu_names = visible_gpus()
        return self._gpu_names

    def plan(self, gpus: str | None = None, nproc: int | None = None) -> dict:
        """config.json's "launch" for the form's choice, as `tunedoc train --gpus/--nproc` plans it
        (trainer.launch.plan_launch). ValueError says what is wrong with the choice."""
        return launch.plan_launch(gpus=gpus, nproc=nproc, gpu_names=self.gpu_names())

    def start(self, model: str, data: str, profile: str | None, sets: list[str], name: str | None,
              gpus: str | None = None, nproc: int | None = None, strategy: str | None = None) -> launch.RunHandle:
        """A detached run (it outlives this app) on `gpus` (all|N|0,2; default: every GPU) or `nproc` CPU
        processes; `strategy` (auto|ddp|fsdp) as `tunedoc train --strategy` takes it: the profile's field, which
        trainer.launch resolves into config.json's launch (None: the profile's own). Raises
        ProfileError/FileNotFoundError/RuntimeError/ValueError with messages that name the problem. The model is
        checked first (as `tunedoc train` does): a folder without config.json or tokenizer, or a Hub id neither
        cached nor reachable, starts no run."""
        from tunedoc.trainer.modelcheck import check_model

        problem = check_model(model)
        if problem:
            raise RuntimeError(problem)
        plan = self.plan(gpus, nproc)
        if strategy:
            sets = [*sets, f"strategy={strategy}"]  # as `tunedoc train --strategy` does
        return launch.start_run(model, data, profile, sets, self.runs_dir, name or None, launch=plan)

    def start_demo(self, identity: str = "Tuna", steps: int | None = None,
                   run: Callable[..., subprocess.CompletedProcess] = subprocess.run, maker: str | None = None,
                   nproc: int | None = None) -> Path:
        """`tunedoc demo --detach` in a child process (building the tiny model needs torch, which this process
        never imports). Returns the new run's directory; RuntimeError with the child's reason when it fails.
        `nproc`: that many CPU processes (`tunedoc demo --nproc`)."""
        argv = tunedoc_argv(python=self.python) + ["demo", "--detach", "--json", "--identity", identity,
                "--runs-dir", str(self.runs_dir)] + (["--steps", str(steps)] if steps else []) + (
                    ["--maker", maker] if maker else []) + (["--nproc", str(nproc)] if nproc else [])
        try:
            out = run(argv, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise RuntimeError("building the demo model took over 5 minutes") from None
        if out.returncode != 0:
            tail = (out.stderr or out.stdout or "").strip().splitlines()[-3:]
            raise RuntimeError("tunedoc demo failed: " + (" / ".join(tail) or f"exit code {out.returncode}"))
        try:
            return Path(json.loads(out.stdout.strip().splitlines()[-1])["run_dir"])
        except (ValueError, KeyError, IndexError):
            raise RuntimeError(f"tunedoc demo answered something unexpected: {out.stdout[-300:]!r}") from None

    def control(self, run_dir: Path, action: str) -> Path:
        """Ask the run to save/pause/resume/stop. RuntimeError (saying why) when the run is not active."""
        if self.alive is not None and Path(run_dir).name in self.alive:
            from tunedoc.trainer import control

            return control.request(run_dir, action)
        return launch.send_control(run_dir, action)

    def export_argv(self, run_dir: Path, merge: bool = False) -> list[str]:
        argv = tunedoc_argv(python=self.python) + ["export", str(run_dir)]
        return argv + (["--merge"] if merge else [])

    def check_data(self, path: str, model: str | None = None, cutoff_len: int | None = None,
                   run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> dict[str, Any]:
        """`tunedoc data check --json` in a child process (the tokenizer may need transformers). Returns its report,
        or {"ok": False, "problems": [...]} saying why the check itself failed."""
        argv = tunedoc_argv(python=self.python) + ["data", "check", path, "--json"]
        if model:
            argv += ["--model", model]
        if cutoff_len:
            argv += ["--cutoff-len", str(cutoff_len)]
        try:
            proc = run(argv, capture_output=True, text=True, timeout=DATA_CHECK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return {"ok": False, "problems": [{"where": path, "message": f"the data check took over "
                                               f"{DATA_CHECK_TIMEOUT_S}s; run `tunedoc data check {path}` to see why"}]}
        try:
            return json.loads(proc.stdout)
        except ValueError:
            why = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            return {"ok": False, "problems": [{"where": path, "message": why.removeprefix("tunedoc: ")}]}

    # --- hardware --------------------------------------------------------------------------------------------
    def sample_hardware(self, pid: int | None) -> HardwareSample:
        if self._hardware is None:
            self._hardware = HardwareMonitor()
        return self._hardware.sample(pid)


class FakeHardware:
    """A fixed reading (tests, snapshots)."""

    def __init__(self, sample: HardwareSample) -> None:
        self._sample = sample

    def sample(self, pid: int | None) -> HardwareSample:
        if pid is None and self._sample.kind == "process":
            return HardwareSample("none", [], None, "no GPU; the trainer process is not running")
        return self._sample
