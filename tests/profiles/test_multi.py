"""The per-GPU figure of a multi-GPU run: ddp is the one-GPU estimate plus DDP's gradient buckets and NCCL's buffers;
fsdp shards weights, LoRA, gradients and optimizer states 1/N and adds the all-gather buffers (checked by hand for a
7B QLoRA on 2 GPUs); auto picks ddp when the whole model fits a GPU, fsdp when only its shards do."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tunedoc.profiles.estimate import estimate
from tunedoc.profiles.multi import NCCL_GB, choose_strategy, load_gb, per_gpu
from tunedoc.profiles.profile import load_profile

CONFIG = Path(__file__).parent / "configs" / "llama-3.1-8b.json"
LLAMA2_7B = Path(__file__).parent / "configs" / "llama-2-7b.json"
LLAMA2_70B = Path(__file__).parent / "configs" / "llama-2-70b.json"
GiB = 2**30


def test_ddp_adds_buckets_and_nccl_per_gpu_and_nothing_else():
    one = estimate(json.loads(CONFIG.read_text()), load_profile("qlora-balanced"))
    assert per_gpu(one, 1) is one
    two = per_gpu(one, 2)
    assert two.breakdown["ddp_buckets"] == pytest.approx(one.breakdown["lora_grads"])
    assert two.total_gb == pytest.approx(one.total_gb + one.breakdown["lora_grads"] + NCCL_GB)
    # replicated, not sharded: 8 GPUs need per GPU what 2 do
    assert per_gpu(one, 8).total_gb == pytest.approx(two.total_gb)
    assert any("replicated" in a for a in two.assumptions) and two.details["gpus"] == 2
    with pytest.raises(ValueError, match="ddp, fsdp"):
        per_gpu(one, 2, "zero3")


def test_fsdp_per_gpu_for_a_7b_qlora_on_2_gpus_checked_by_hand():
    # Llama-2-7B: hidden 4096, MLP 11008, 32 layers, vocabulary 32000, untied lm_head; qlora-balanced: nf4-dq,
    # LoRA r 16 on all linear layers, bf16 compute, paged 8-bit AdamW
    one = estimate(json.loads(LLAMA2_7B.read_text()), load_profile("qlora-balanced"))
    two = per_gpu(one, 2, "fsdp")
    b = two.breakdown
    linear_per_layer = 4 * 4096 * 4096 + 3 * 4096 * 11008  # q k v o + gate up down = 202,375,168
    assert linear_per_layer == 202_375_168
    # sharded 1/2: the 4-bit weights (half a byte each) ...
    assert b["quantized_weights"] == pytest.approx(32 * linear_per_layer * 0.5 / 2 / GiB)  # 1.508 GiB
    # ... embeddings + lm_head + 65 norms, upcast to fp32 by prepare_model_for_kbit_training
    assert b["weights_16bit"] == pytest.approx((2 * 32000 * 4096 + 65 * 4096) * 4 / 2 / GiB)  # 0.489 GiB
    lora_per_layer = 16 * (4 * (4096 + 4096) + 3 * (4096 + 11008))  # 1,249,280 params
    assert b["lora_params"] == pytest.approx(32 * lora_per_layer * 4 / 2 / GiB)  # fp32: 0.074 GiB
    assert b["lora_grads"] == pytest.approx(32 * lora_per_layer * 4 / 2 / GiB)
    assert b["optimizer_states"] == pytest.approx(32 * lora_per_layer * 2 / 2 / GiB)  # 8-bit Adam: 2 bytes
    # replicated: quantization constants, activations and the backward of one layer, as on one GPU
    for k in ("quant_constants", "activations", "layer_backward", "cuda_context"):
        assert b[k] == pytest.approx(one.breakdown[k]), k
    # all-gathered in bf16: the root (embeddings + lm_head) from forward to backward, and 2 layers (4-bit packed
    # weights + their 2 norms + LoRA) at a time
    root = 2 * 32000 * 4096 * 2
    layer = linear_per_layer * 0.5 + 2 * 4096 * 2 + lora_per_layer * 2
    assert b["fsdp_gather"] == pytest.approx((root + 2 * layer) / GiB, rel=1e-3)  # 0.681 GiB
    assert b["nccl_buffers"] == NCCL_GB
    assert two.total_gb == pytest.approx(sum(b.values()))
    # by hand: the one-GPU 6.6 GiB becomes 5.3 GiB per GPU; ddp would need 7.0
    assert one.total_gb == pytest.approx(6.63, abs=0.01)
    assert two.total_gb == pytest.approx(5.26, abs=0.01)
    assert per_gpu(one, 2, "ddp").total_gb == pytest.approx(7.02, abs=0.01)
    assert per_gpu(one, 8, "fsdp").total_gb < two.total_gb  # more GPUs, smaller shards
    assert two.details["strategy"] == "fsdp" and any("sharded 1/2" in a for a in two.assumptions)


def test_auto_picks_ddp_when_the_model_fits_a_gpu_and_fsdp_when_only_its_shards_do():
    small = estimate(json.loads(LLAMA2_7B.read_text()), load_profile("qlora-balanced"))
    big = estimate(json.loads(LLAMA2_70B.read_text()), load_profile("qlora-balanced"))
    assert choose_strategy("auto", small, 2, 24.0)[0] == "ddp"  # 7B on two 24 GB cards: whole on each
    strategy, why = choose_strategy("auto", big, 2, 40.0)  # 70B: 45.7 GiB whole, 27.7 sharded
    assert strategy == "fsdp" and "45.7" in why and "27.7" in why
    assert choose_strategy("auto", big, 2, 24.0)[0] == "fsdp"  # neither fits: the closer one, with a warning
    assert "may run out of memory" in choose_strategy("auto", big, 2, 24.0)[1]
    # 4 x 24 GB: the shards fit (18.1 GiB), and the low-memory load puts only them on a GPU (10.9 GiB while loading,
    # not the whole 35.3 GiB 4-bit model): no out-of-memory predicted; rank 0's CPU RAM (35.6 GiB) is what loading needs
    strategy, why = choose_strategy("auto", big, 4, 24.0)
    assert strategy == "fsdp" and "18.1" in why and "10.9 GiB while loading" in why and "35.6 GiB of CPU RAM" in why
    assert "run out" not in why
    assert load_gb(big) == pytest.approx(35.3, abs=0.05) and load_gb(big, 4) == pytest.approx(10.9, abs=0.05)
    assert load_gb(big, 4) < load_gb(big, 2) < load_gb(big)  # more GPUs, smaller shards to load
    # a machine with less RAM than rank 0 must read the model into: said, whether auto chose fsdp or it was asked for
    assert "run out of RAM while loading" in choose_strategy("auto", big, 4, 24.0, ram_gib=32.0)[1]
    assert "run out of RAM while loading" in choose_strategy("fsdp", big, 2, 24.0, ram_gib=32.0)[1]
    assert "RAM" not in choose_strategy("fsdp", big, 2, 24.0, ram_gib=64.0)[1]
    assert choose_strategy("auto", big, 2, 40.0, quant="int8")[0] == "ddp"  # int8 cannot be sharded
    assert choose_strategy("auto", big, 2, 40.0, device="cpu")[0] == "ddp"  # --nproc: ddp
    assert choose_strategy("auto", big, 2, None)[0] == "ddp"  # GPU size unknown
    assert choose_strategy("fsdp", small, 2, 80.0)[0] == "fsdp"  # asked for: as asked


def test_estimate_cli_per_gpu():
    out = subprocess.run([sys.executable, "-m", "tunedoc", "estimate", "--model", str(CONFIG), "--gpus", "2", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["details"]["gpus"] == 2 and res["breakdown"]["nccl_buffers"] == NCCL_GB
    bad = subprocess.run([sys.executable, "-m", "tunedoc", "estimate", "--model", str(CONFIG), "--gpus", "0"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "at least 1" in bad.stderr


def test_estimate_cli_fsdp_and_auto():
    def run(*extra):
        out = subprocess.run([sys.executable, "-m", "tunedoc", "estimate", "--model", str(LLAMA2_70B), "--gpus", "2",
                              *extra], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    res = json.loads(run("--strategy", "fsdp", "--json"))
    assert res["details"]["strategy"] == "fsdp" and res["breakdown"]["fsdp_gather"] > 0
    auto = json.loads(run("--gpu", "A100 40GB", "--json"))
    assert auto["details"]["strategy"] == "fsdp"  # auto: only shards fit, and the first assumption says so
    assert auto["assumptions"][0].startswith("strategy auto: fsdp") and "shards" in auto["assumptions"][0]
    text = run("--strategy", "fsdp")
    assert "quantized weights, sharded 1/2" in text and "quantization constants, replicated" in text
    assert "FSDP all-gather buffers" in text
    # a rank's own micro-batch is not a copy of anything, under either strategy
    assert "activations, per rank" in text and "activations, per rank" in run("--strategy", "ddp")
    assert "activations, replicated" not in run("--strategy", "ddp")


def test_fit_under_fsdp_splits_the_figure_into_sharded_parts_and_refuses_int8():
    from tunedoc.profiles.fit import fit, parts

    config = json.loads(LLAMA2_7B.read_text())
    results = {r.profile.name: r for r in fit(config, 12.0, gpus=2, strategy="fsdp")}
    qlora = results["qlora-balanced"]
    shares = parts(qlora.estimate)
    # the 4-bit weights, adapter, gradients and optimizer states are split over the GPUs, not held whole on each
    assert shares["sharded"] > shares["replicated"] and shares["sharded"] == pytest.approx(
        sum(qlora.estimate.breakdown[k] for k in ("quantized_weights", "weights_16bit", "lora_params", "lora_grads",
                                                  "optimizer_states") if k in qlora.estimate.breakdown))
    assert sum(shares.values()) == pytest.approx(qlora.estimate.total_gb)
    # trainer/fsdp.py cannot shard int8: the profile is not offered under fsdp whatever its size
    int8 = results["lora-8bit"]
    assert not int8.fits and "cannot be sharded" in int8.suggestion and int8.changes == {"quant": "nf4"}
    assert int8.estimate.details["strategy"] == "ddp"


def test_fit_help_names_the_strategies_fit_judges(capsys):
    from tunedoc.cli import main

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--strategy ddp|fsdp" in help_text and "fsdp (sharded 1/N" in help_text


def test_estimate_under_fsdp_refuses_int8_as_the_trainer_does_and_names_4bit_storage_only_for_4bit(capsys):
    from tunedoc.cli import main

    code = main(["estimate", "--model", str(LLAMA2_7B), "--profile", "lora-8bit", "--gpus", "2", "--strategy", "fsdp"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "quant=int8" in err and "strategy=ddp" in err
    one = estimate(json.loads(LLAMA2_7B.read_text()), load_profile("lora-16bit"))
    assert not any("4-bit" in a for a in per_gpu(one, 2, "fsdp").assumptions)  # 16-bit LoRA: no 4-bit weights
    qlora = estimate(json.loads(LLAMA2_7B.read_text()), load_profile("qlora-balanced"))
    assert any("bnb_4bit_quant_storage" in a for a in per_gpu(qlora, 2, "fsdp").assumptions)
