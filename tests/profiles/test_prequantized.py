"""Pre-quantized checkpoints (config.json's quantization_config, in the shapes Qwen2.5-7B-Instruct-AWQ, -GPTQ-Int4,
unsloth's -bnb-4bit and Qwen's -FP8 repos publish): the weights are estimated as stored, the breakdown says so, and
what tunedoc's trainer cannot train is one sentence from estimate, fit and train."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from profile_configs import CONFIGS, load

from tunedoc.cli import main
from tunedoc.profiles.archs import model_shape, prequantized
from tunedoc.profiles.estimate import estimate
from tunedoc.profiles.profile import Profile

PRE = CONFIGS / "prequantized"
ROOT = Path(__file__).parents[2]


def pre(name: str) -> dict:
    return json.loads((PRE / f"qwen2.5-7b-instruct-{name}.json").read_text())


def est(config: dict, **fields):
    return estimate(config, Profile(**fields), corrections=False)


@pytest.mark.parametrize("name, method", [("awq", "awq"), ("gptq-int4", "gptq")])
def test_gptq_and_awq_weights_count_at_their_bits_whatever_the_profile_says(name, method):
    config = pre(name)
    linear = model_shape(config).linear_params
    e16, e4 = est(config, quant="none"), est(config, quant="nf4-dq")
    for e in (e16, e4):  # the checkpoint decides: 4 bits a weight, an fp16 scale and a packed zero per 128
        assert e.breakdown["quantized_weights"] * 2**30 == pytest.approx(linear * 0.5)
        assert e.breakdown["quant_constants"] * 2**30 == pytest.approx(linear / 128 * 2.5)
    # embeddings and lm_head stay 16-bit, and are not upcast to fp32 (peft does not for GPTQ/AWQ)
    shape = model_shape(config)
    assert e4.breakdown["weights_16bit"] * 2**30 == pytest.approx(
        (shape.embed_params + shape.lm_head_params + shape.norm_params) * 2)
    # far below the 16-bit estimate the same config.json gave before
    assert e16.total_gb < est(load("qwen2.5-7b"), quant="none").total_gb - 9
    said = " ".join(e16.assumptions)
    assert f"pre-quantized checkpoint ({method.upper()} 4-bit, group size 128" in said
    assert "the profile's quant=none does not apply" in said and "tunedoc train cannot train this checkpoint" in said
    assert e16.details["prequantized"]["trainable"] is False


def test_a_bitsandbytes_checkpoint_is_its_own_quantization():
    config = pre("bnb-4bit")
    assert prequantized(config).quant == "nf4-dq" and prequantized(config).trainable
    as_stored = est(config, quant="none")
    # the same figure as tunedoc quantizing the 16-bit model to nf4-dq itself
    assert as_stored.total_gb == pytest.approx(est(load("qwen2.5-7b"), quant="nf4-dq").total_gb)
    assert "the profile's quant=none does not apply" in " ".join(as_stored.assumptions)


def test_fp8_weights_are_one_byte_and_unknown_methods_are_a_sentence_not_a_number():
    config = pre("fp8")
    linear = model_shape(config).linear_params
    e = est(config)
    assert e.breakdown["quantized_weights"] * 2**30 == pytest.approx(linear)
    assert e.breakdown["quant_constants"] * 2**30 == pytest.approx(linear / (128 * 128) * 4)
    aqlm = {**load("qwen2.5-7b"), "quantization_config": {"quant_method": "aqlm", "nbits_per_codebook": 16,
                                                          "num_codebooks": 1, "in_group_size": 8}}
    with pytest.raises(ValueError, match="pre-quantized with aqlm"):
        est(aqlm)
    assert prequantized(load("qwen2.5-7b")) is None


def test_the_packing_assumption_follows_the_profile():
    assert any("rows packed to full length" in a for a in est(load("qwen2.5-7b"), packing=True).assumptions)
    said = " ".join(est(load("qwen2.5-7b"), packing=False).assumptions)
    assert "rows packed" not in said and "not packed" in said


def test_estimate_and_fit_say_tunedoc_cannot_train_it(capsys):
    gptq = str(PRE / "qwen2.5-7b-instruct-gptq-int4.json")
    assert main(["estimate", "--model", gptq]) == 0
    out, err = capsys.readouterr()
    assert "`tunedoc train` cannot train" in err and "GPTQ 4-bit" in err and "no GPTQ kernels" in err
    assert "pre-quantized checkpoint (GPTQ" in out
    assert main(["fit", "--model", gptq, "--vram", "24"]) == 0
    assert "`tunedoc train` cannot train" in capsys.readouterr().err
    assert main(["estimate", "--model", str(PRE / "qwen2.5-7b-instruct-bnb-4bit.json")]) == 0
    assert "cannot train" not in capsys.readouterr().err


def test_train_refuses_a_checkpoint_it_cannot_train(tiny_model_dir, identity_jsonl, tmp_path):
    def train(model, *sets):
        return subprocess.run([sys.executable, "-m", "tunedoc", "train", "--model", str(model), "--data",
                               str(identity_jsonl), "--runs-dir", str(tmp_path / "runs"), "--dry-run", *sets],
                              capture_output=True, text=True, timeout=120, env={**__import__("os").environ,
                                                                                 "PYTHONPATH": str(ROOT)})

    def with_quant(name: str, qc: dict) -> Path:
        d = tmp_path / name
        shutil.copytree(tiny_model_dir, d)
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({**cfg, "quantization_config": qc}))
        return d

    r = train(with_quant("gptq", pre("gptq-int4")["quantization_config"]))
    assert r.returncode == 2 and "is a pre-quantized GPTQ 4-bit, group size 128 checkpoint" in r.stderr, r.stderr
    bnb = with_quant("bnb", pre("bnb-4bit")["quantization_config"])
    r = train(bnb, "--profile", "lora-16bit")
    assert r.returncode == 2 and "--set quant=nf4-dq" in r.stderr, r.stderr
    r = train(bnb, "--profile", "qlora-min")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("name", ["bnb-4bit", "gptq-int4"])
def test_fsdp_gathers_a_prequantized_checkpoints_layers_as_stored_whatever_the_profile_quant(name):
    config = pre(name)
    # the checkpoint loads 4-bit whatever the profile says: a layer all-gathers the same bytes under quant=none
    as_16bit = est(config, quant="none").details["fsdp"]["layer_gb"]
    as_4bit = est(config, quant="nf4").details["fsdp"]["layer_gb"]
    assert as_16bit == pytest.approx(as_4bit)
    assert as_16bit < est(load("qwen2.5-7b"), quant="none").details["fsdp"]["layer_gb"] / 3  # not 16-bit
