"""Shared fixtures for every test package.

- `tiny_model_dir` (session): a Path to a tiny random-weight Llama model directory built on the spot by
  trainer.tiny.build_tiny_model (config.json, model.safetensors, tokenizer.json with a ChatML chat template,
  generation_config.json; ~200k parameters, loads with AutoModelForCausalLM/AutoTokenizer.from_pretrained).
  Treat it as read-only: it is shared by the whole session. Copy it if a test must change it.
- `identity_jsonl` (session): a Path to an openai-format JSONL self-identity data set ("I am Tuna, an assistant
  made by tunedoc ..."), one conversation per line, from trainer.tiny.write_identity_dataset.
- `tiny_tokenizer` (session): the tiny model's tokenizer, loaded once.
"""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from tunedoc.trainer.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny-llama")


@pytest.fixture(scope="session")
def identity_jsonl(tmp_path_factory):
    from tunedoc.trainer.tiny import write_identity_dataset

    return write_identity_dataset(tmp_path_factory.mktemp("identity-data") / "identity.jsonl")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)
