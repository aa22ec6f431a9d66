"""The CPU memory figure is the process's peak as the OS counts it: a big temporary that a step allocates and
frees before the step ends still shows in the peak (issue 17: a 4096-token run reported 754 MB; GNU time 8.1 GB)."""

import json
import subprocess
import sys

CHILD = r"""
import json
import torch
from tunedoc.trainer.recipe import Recipe

recipe = Recipe.__new__(Recipe)  # only what _memory reads: a CPU run
recipe.device, recipe.peak_rss = "cpu", 0
before = recipe._memory()

def step():  # the logits of a long sequence: 512 MiB, gone before the step ends (and before it is sampled)
    logits = torch.ones(512 * 2**20 // 4)
    loss = float(logits.sum())
    del logits
    return loss

step()
after = recipe._memory()
print(json.dumps({"before": before["peak_mem_mb"], "after": after["peak_mem_mb"], "kind": after["mem_kind"]}))
"""


def test_a_temporary_freed_inside_the_step_shows_in_the_cpu_peak():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["kind"] == "rss"
    assert got["after"] - got["before"] >= 450, got  # MiB: the 512 MiB temporary, whatever the baseline


def test_the_peak_is_the_childs_own_not_its_parents():
    # a parent holding ~600 MiB starts the child: the child's peak must not start from the parent's
    parent = ("import subprocess, sys; b = bytearray(600 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
              "sys.exit(subprocess.run([sys.executable, '-c', sys.argv[1]]).returncode)")
    child = "from tunedoc.trainer.recipe import peak_rss_bytes; print(peak_rss_bytes() // 2**20)"
    out = subprocess.run([sys.executable, "-c", parent, child], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip().splitlines()[-1]) < 500, out.stdout
