"""CPU threads for a training process that shares the machine well.

Why: torch's CPU ops run on OpenMP threads, one per core by default, and GNU OpenMP (the one the Linux wheels use)
spin-waits at the end of every parallel region. With another CPU-bound process on a 2-core box, one of the two
threads is often descheduled; the other spins until its time slice ends, on every op. A small model runs
thousands of short ops per step, so the run collapsed to about 1/30 of its speed (issue 17).

So, before torch is imported (OpenMP reads its settings once, at load):
- OMP_WAIT_POLICY=PASSIVE: a thread that waits sleeps instead of spinning and gives its core back, after a short
  spin (GOMP_SPINCOUNT=10000, a few microseconds): with no spin at all, a tiny model's thousands of short ops each
  paid a sleep and wake-up, and the demo ran 1.7x slower on a quiet box (200 steps: 13.7 s with no spin, 7.6 s
  with the short spin, 9.7 s spinning for ever); with a competitor and 2 threads the short spin costs more than
  none (100 steps: 22.5 s against 6.1 s), which is what the thread count below and the governor's re-checks avoid
  (one thread has nothing to wait for);
- OMP_NUM_THREADS: the cores actually free for this process: the cores it may run on (affinity, a container's
  CPU quota) less those other processes keep busy now, shared among the ranks on this machine.
A value the user set for either variable is kept.

    plan = configure(os.environ)      # in the trainer process, before `import torch`
    choose_threads(cores=2, busy=1.0) # -> 1: the pure rule, tested without timing anything
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path


def choose_threads(cores: int, busy: float, ranks: int = 1) -> int:
    """Intra-op threads per rank: the free cores (cores less the busy ones, a core busy more than half counted as
    taken) split among `ranks`, at least 1, at most the rank's share of `cores`."""
    cores, ranks = max(1, int(cores)), max(1, int(ranks))
    free = math.floor(cores - max(0.0, float(busy)) + 0.5)
    share = max(1, cores // ranks)
    return max(1, min(share, free // ranks))


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota (containers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def busy_cores(window_s: float = 0.3) -> float:
    """Cores kept busy by other processes right now: the machine's CPU use over `window_s` less this process's
    own. Falls back to the 1-minute load average, then to 0."""
    try:
        import psutil

        me = psutil.Process()
        me.cpu_percent(None)
        psutil.cpu_percent(None)
        time.sleep(window_s)
        total = psutil.cpu_percent(None) / 100 * (psutil.cpu_count() or 1)
        return max(0.0, total - me.cpu_percent(None) / 100)
    except Exception:  # noqa: BLE001 - no psutil, or no access to /proc
        try:
            return float(os.getloadavg()[0])
        except (AttributeError, OSError):
            return 0.0


def configure(env=None, ranks: int | None = None) -> dict:
    """Set OMP_WAIT_POLICY (and its spin count) and OMP_NUM_THREADS in `env` (default os.environ) unless the user
    set them; returns
    what was decided, for the log."""
    env = os.environ if env is None else env
    if ranks is None:
        ranks = int(env.get("LOCAL_WORLD_SIZE") or 1)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if env["OMP_WAIT_POLICY"].upper() == "PASSIVE":
        env.setdefault("GOMP_SPINCOUNT", "10000")  # a short spin before sleeping (see above)
    cores = usable_cores()
    if env.get("OMP_NUM_THREADS"):
        return {"threads": env["OMP_NUM_THREADS"], "source": "OMP_NUM_THREADS", "cores": cores,
                "wait_policy": env["OMP_WAIT_POLICY"]}
    busy = busy_cores()
    threads = choose_threads(cores, busy, ranks)
    env["OMP_NUM_THREADS"] = str(threads)
    return {"threads": threads, "source": "free cores", "cores": cores, "busy": round(busy, 2), "ranks": ranks,
            "wait_policy": env["OMP_WAIT_POLICY"]}


class ThreadGovernor:
    """Re-checks the free cores every `every_s` seconds between training steps and moves torch's intra-op thread
    count to match (another job started or ended on the machine since the run began). Only for a count tunedoc
    chose: a user's OMP_NUM_THREADS is left alone."""

    def __init__(self, plan: dict, every_s: float = 15.0, clock=time.monotonic) -> None:
        self.active = plan.get("source") == "free cores"
        self.cores, self.ranks = int(plan.get("cores") or 1), int(plan.get("ranks") or 1)
        self.threads = int(plan.get("threads") or 1)
        self.every_s, self.clock = every_s, clock
        self.last = clock()
        self._proc = None
        if self.active:
            try:
                import psutil

                self._proc = psutil.Process()
                self._proc.cpu_percent(None)
                psutil.cpu_percent(None)
            except Exception:  # noqa: BLE001
                self.active = False

    def tick(self) -> str | None:
        """Between steps: a line for the log when the thread count changed, else None. Cheap when not due."""
        if not self.active or self.clock() - self.last < self.every_s:
            return None
        self.last = self.clock()
        import psutil

        total = psutil.cpu_percent(None) / 100 * (psutil.cpu_count() or 1)
        busy = max(0.0, total - self._proc.cpu_percent(None) / 100)
        threads = choose_threads(self.cores, busy, self.ranks)
        if threads == self.threads:
            return None
        import torch

        torch.set_num_threads(threads)
        before, self.threads = self.threads, threads
        return f"cpu threads: {before} -> {threads} ({busy:.1f} of {self.cores} cores busy with other processes)"
