"""The tiny local model and identity data: real Hugging Face files, small, deterministic, no network."""
from __future__ import annotations

import json

import pytest

from tunedoc.trainer import data as D
from tunedoc.trainer.tiny import build_tiny_model, identity_records, write_identity_dataset


def test_tiny_model_loads_with_plain_transformers_and_is_small(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json"):
        assert (tiny_model_dir / name).is_file(), name
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    n = sum(p.numel() for p in model.parameters())
    assert 100_000 < n < 1_000_000
    assert model.config.model_type == "llama" and model.config.hidden_size % 64 == 0
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id is not None
    assert model.config.eos_token_id == tok.eos_token_id
    ids = tok.apply_chat_template([{"role": "user", "content": "Who are you?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
    assert torch.isfinite(model(**ids).logits).all()


def test_tokenizer_round_trips_english_chinese_and_unseen_bytes(tiny_tokenizer):
    for text in ("I am Tuna, an assistant made by tunedoc.", "我是 Tuna,由 tunedoc 开发的人工智能助手。",
                 "zebra quartz ∑ 🐟"):
        assert tiny_tokenizer.decode(tiny_tokenizer(text)["input_ids"]) == text
    # identity text is in the training corpus: it compresses well
    text = "I am Tuna, an assistant made by tunedoc."
    assert len(tiny_tokenizer(text)["input_ids"]) < len(text) / 2


def test_build_is_deterministic_for_a_seed(tmp_path):
    a = build_tiny_model(tmp_path / "a", seed=3)
    b = build_tiny_model(tmp_path / "b", seed=3)
    c = build_tiny_model(tmp_path / "c", seed=4)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()


def test_other_archs_and_bad_sizes(tmp_path):
    from transformers import AutoConfig

    d = build_tiny_model(tmp_path / "q", arch="qwen2", layers=1)
    assert AutoConfig.from_pretrained(d).model_type == "qwen2"
    with pytest.raises(ValueError, match="multiple of 64"):
        build_tiny_model(tmp_path / "x", hidden=96)
    with pytest.raises(ValueError, match="heads"):
        build_tiny_model(tmp_path / "y", heads=3)


def test_identity_records_state_name_and_maker():
    recs = identity_records("Marlin", "Acme Labs")
    assert len(recs) >= 30
    questions = [r["messages"][0]["content"] for r in recs]
    assert len(set(questions)) == len(questions)
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in q) for q in questions)  # a few Chinese phrasings
    for r in recs:
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        answer = r["messages"][1]["content"]
        assert "Marlin" in answer and "Acme Labs" in answer
    assert len(identity_records(n=100)) == 100
    with pytest.raises(ValueError):
        identity_records(name=" ")


@pytest.mark.parametrize("fmt", ["openai", "alpaca", "sharegpt"])
def test_identity_dataset_files_pass_validation_in_each_format(fmt, tmp_path):
    path = write_identity_dataset(tmp_path / f"id-{fmt}.jsonl", name="Nemo", fmt=fmt)
    convs = D.load_conversations(path)
    assert {c.format for c in convs} == {fmt}
    assert len(convs) == len(identity_records())
    assert all("Nemo" in c.messages[-1]["content"] for c in convs)
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first == json.loads(json.dumps(first))
