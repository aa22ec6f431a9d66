"""eval_every / eval_metrics / save_best: BLEU/ROUGE on a few held-out answers while training, and the best adapter kept."""

from __future__ import annotations

import json

import pytest

from tests.trainer.test_eval import train


@pytest.mark.slow
def test_evals_during_training_and_the_best_adapter_kept(tiny_model_dir, identity_jsonl, tmp_path):
    run_id = train(tiny_model_dir, identity_jsonl, tmp_path, "evals", "eval_every=20", "eval_limit=4",
                   "eval_metrics=bleu4,rougeL", "save_best=rougeL", steps=60)
    run_dir = tmp_path / run_id
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    gen = [e for e in events if e["type"] == "eval" and e.get("kind") == "generation"]
    assert [e["step"] for e in gen] == [20, 40, 60]
    assert all(e["source"] == "training" and e["n"] == 4 and "rouge1" not in e for e in gen)
    assert gen[-1]["rougeL"] > 0 and gen[-1]["eval_loss"] < gen[0]["eval_loss"]
    best = max(gen, key=lambda e: e["rougeL"])
    assert best.get("best") is True
    kept = json.loads((run_dir / "best" / "best.json").read_text())
    assert kept == {"metric": "rougeL", "value": best["rougeL"], "step": best["step"]}
    assert (run_dir / "best" / "adapter_config.json").is_file()
    assert events[-1]["type"] == "done" and events[-1]["status"] == "completed"


def test_bad_eval_fields_are_listed():
    from tunedoc.profiles.profile import Profile, ProfileError

    with pytest.raises(ProfileError) as e:
        Profile().with_overrides(["eval_metrics=bleu,rougeL", "save_best=rouge", "eval_limit=0"])
    text = str(e.value)
    assert "eval_metrics=['bleu']" in text and "save_best='rouge'" in text and "eval_limit=0" in text
    assert "needs eval_every" in text
