"""The per-GPU figure of a data-parallel run: the one-GPU estimate plus DDP's gradient buckets and NCCL's buffers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunedoc.profiles.estimate import estimate
from tunedoc.profiles.multi import NCCL_GB, per_gpu
from tunedoc.profiles.profile import load_profile

CONFIG = Path(__file__).parent / "configs" / "llama-3.1-8b.json"


def test_ddp_adds_buckets_and_nccl_per_gpu_and_nothing_else():
    one = estimate(json.loads(CONFIG.read_text()), load_profile("qlora-balanced"))
    assert per_gpu(one, 1) is one
    two = per_gpu(one, 2)
    assert two.breakdown["ddp_buckets"] == pytest.approx(one.breakdown["lora_grads"])
    assert two.total_gb == pytest.approx(one.total_gb + one.breakdown["lora_grads"] + NCCL_GB)
    # replicated, not sharded: 8 GPUs need per GPU what 2 do
    assert per_gpu(one, 8).total_gb == pytest.approx(two.total_gb)
    assert any("replicated" in a for a in two.assumptions) and two.details["gpus"] == 2
    with pytest.raises(ValueError, match="fsdp"):
        per_gpu(one, 2, "fsdp")


def test_estimate_cli_per_gpu():
    out = subprocess.run([sys.executable, "-m", "tunedoc", "estimate", "--model", str(CONFIG), "--gpus", "2", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["details"]["gpus"] == 2 and res["breakdown"]["nccl_buffers"] == NCCL_GB
    bad = subprocess.run([sys.executable, "-m", "tunedoc", "estimate", "--model", str(CONFIG), "--gpus", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "at least 1" in bad.stderr
