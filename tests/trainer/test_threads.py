"""Training threads on a shared machine (issue 17: the CPU demo ran at 1/30 speed next to a CPU-bound process):
the thread count is a pure function of the free cores, and OpenMP waits passively unless the user says otherwise."""

import json
import subprocess
import sys

import pytest

from tunedoc.trainer import threads
from tunedoc.trainer.threads import choose_threads


@pytest.mark.parametrize("cores, busy, ranks, expected", [
    (2, 0.0, 1, 2),   # an idle 2-core box: both cores
    (2, 0.3, 1, 2),   # a little background noise does not cost a core
    (2, 1.0, 1, 1),   # another CPU-bound process: the one free core, no thread left waiting for a time slice
    (2, 2.5, 1, 1),   # fully busy: still one thread
    (8, 3.0, 1, 5),
    (8, 0.0, 2, 4),   # two ranks share the free cores
    (8, 6.0, 4, 1),
    (1, 0.0, 1, 1),
])
def test_thread_count_follows_the_free_cores(cores, busy, ranks, expected):
    assert choose_threads(cores, busy, ranks) == expected


def test_configure_sets_passive_waiting_and_the_count_but_keeps_what_the_user_set(monkeypatch):
    monkeypatch.setattr(threads, "busy_cores", lambda window_s=0.3: 1.0)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    env = {}
    plan = threads.configure(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000", "OMP_NUM_THREADS": "1"}
    assert plan["busy"] == 1.0
    mine = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "3"}
    threads.configure(mine)
    assert mine == {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "3"}  # no spin count forced on ACTIVE
    spin = {"GOMP_SPINCOUNT": "0"}
    threads.configure(spin)
    assert spin["GOMP_SPINCOUNT"] == "0"


CHILD = r"""
import json, os
from tunedoc.trainer import threads
threads.busy_cores = lambda window_s=0.3: 1.0
threads.usable_cores = lambda: 2
os.environ.pop("OMP_NUM_THREADS", None); os.environ.pop("OMP_WAIT_POLICY", None)
threads.configure()
import torch
print(json.dumps({"threads": torch.get_num_threads(), "policy": os.environ["OMP_WAIT_POLICY"]}))
"""


def test_torch_loaded_afterwards_uses_the_chosen_threads():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"threads": 1, "policy": "PASSIVE"}


def test_the_governor_follows_a_job_that_starts_mid_run(monkeypatch):
    import psutil
    import torch

    now = [0.0]
    set_to = []
    monkeypatch.setattr(torch, "set_num_threads", set_to.append)
    gov = threads.ThreadGovernor({"source": "free cores", "cores": 2, "ranks": 1, "threads": 2}, every_s=15,
                                 clock=lambda: now[0])

    class Me:  # this process keeps one core busy
        def cpu_percent(self, interval=None):
            return 100.0

    gov._proc = Me()
    monkeypatch.setattr(psutil, "cpu_count", lambda *a, **k: 2)
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 100.0)  # both cores busy: one is another job
    now[0] = 5.0
    assert gov.tick() is None and set_to == []  # not due yet
    now[0] = 16.0
    assert "2 -> 1" in gov.tick() and set_to == [1]
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 50.0)  # the other job ended
    now[0] = 32.0
    assert "1 -> 2" in gov.tick() and set_to == [1, 2]
    pinned = threads.ThreadGovernor({"source": "OMP_NUM_THREADS", "cores": 2, "threads": "2"}, clock=lambda: 99.0)
    assert pinned.tick() is None
