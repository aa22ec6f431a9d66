import pytest
from profile_configs import load

from tunedoc.profiles.corrections import correction_for, load_records, record, records_path
from tunedoc.profiles.estimate import estimate
from tunedoc.profiles.profile import Profile


def test_records_correct_later_estimates_for_the_same_gpu_and_architecture():
    base = estimate(load("llama-3.1-8b"), Profile(), gpu="NVIDIA GeForce RTX 4090")
    assert base.correction is None
    reserved = base.figure("reserved")
    for ratio in (1.07, 1.08, 1.09):
        record("NVIDIA GeForce RTX 4090", "llama", reserved, reserved * ratio, "qlora-balanced")
    assert records_path().is_file()

    corrected = estimate(load("llama-3.1-8b"), Profile(), gpu="RTX 4090")  # same card, other spelling
    assert corrected.correction["factor"] == pytest.approx(1.08)
    assert corrected.correction["text"] == "corrected +8 % from 3 runs on RTX 4090 (llama)"
    assert corrected.figure("reserved") == pytest.approx(reserved * 1.08)
    assert corrected.breakdown["correction"] > 0 and sum(corrected.breakdown.values()) == pytest.approx(corrected.total_gb)
    assert corrected.correction["text"] in corrected.assumptions  # shown, never hidden

    assert estimate(load("qwen2.5-7b"), Profile(), gpu="RTX 4090").correction is None  # other architecture
    assert estimate(load("llama-3.1-8b"), Profile(), gpu="RTX 3090").correction is None  # other GPU


def test_torn_and_absurd_records_are_ignored():
    record("A100", "qwen2", 10.0, 11.0, "x")
    with records_path().open("a") as f:
        f.write('{"gpu": "A100", "model_type": "qwen2", "estimate_gb": 10, "measured_gb": 50}\n{"gpu": "A1')
    assert len(load_records()) == 2
    assert correction_for("A100", "qwen2")["runs"] == 1  # the 5x ratio is a broken record, not a correction


def test_record_rejects_nonsense():
    with pytest.raises(ValueError, match="positive"):
        record("A100", "llama", 0, 3, "x")
