import json

import pytest
from profile_configs import CONFIGS, load

from tunedoc.profiles.archs import ConfigNotFound, UnsupportedArchitecture, load_config, model_shape

# published parameter counts (model cards), billions
PUBLISHED = {
    "qwen2.5-0.5b": 0.49, "qwen2.5-1.5b": 1.54, "qwen2.5-7b": 7.61, "qwen2.5-14b": 14.7, "qwen2.5-32b": 32.8,
    "qwen2.5-72b": 72.7, "llama-3.1-8b": 8.03, "llama-3.1-70b": 70.6, "llama-2-7b": 6.74, "llama-2-13b": 13.0,
    "llama-2-70b": 69.0, "mistral-7b-v0.1": 7.24, "mixtral-8x7b": 46.7, "gemma-2-9b": 9.24,
    "phi-3-mini-4k": 3.82, "qwen3-30b-a3b": 30.5,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_matches_the_model_card(name):
    shape = model_shape(load(name))
    assert shape.total_params / 1e9 == pytest.approx(PUBLISHED[name], rel=0.015)


def test_every_fixture_is_covered():
    assert {p.stem for p in CONFIGS.glob("*.json")} == set(PUBLISHED)


def test_tied_embeddings_count_once_and_moe_experts_are_separate():
    small = model_shape(load("qwen2.5-0.5b"))
    assert small.tied_embeddings and small.lm_head_params == 0
    moe = model_shape(load("qwen3-30b-a3b"))
    assert moe.experts == 128 and moe.experts_per_token == 8
    assert moe.expert_params > 25e9 and moe.linear_params < 1e9  # experts are 3-D tensors, not nn.Linear
    assert model_shape(load("mixtral-8x7b")).dense_layers == 0


def test_phi3_uses_fused_projections():
    names = [l.name for l in model_shape(load("phi-3-mini-4k")).attn_linears]
    assert names == ["qkv_proj", "o_proj"]


def test_gemma3_reads_the_nested_text_config():
    cfg = {"model_type": "gemma3", "text_config": {"hidden_size": 2560, "num_hidden_layers": 34,
           "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "intermediate_size": 10240,
           "vocab_size": 262208}}
    shape = model_shape(cfg)
    assert shape.model_type == "gemma3_text" and shape.tied_embeddings and shape.norms_per_layer == 4


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(UnsupportedArchitecture, match="'gpt2'.*supported: .*llama.*qwen3_moe"):
        model_shape({"model_type": "gpt2", "hidden_size": 768})
    with pytest.raises(ValueError, match="num_hidden_layers"):
        model_shape({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 10})


def test_load_config_from_file_directory_and_errors(tmp_path):
    assert load_config(str(CONFIGS / "llama-2-7b.json"))["hidden_size"] == 4096
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert load_config(str(tmp_path / "m"))["model_type"] == "llama"
    with pytest.raises(ConfigNotFound, match="without config.json"):
        load_config(str(tmp_path))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigNotFound, match="not a readable JSON"):
        load_config(str(tmp_path / "bad.json"))
    with pytest.raises(ConfigNotFound, match="not in the local cache|could not fetch"):
        load_config("someone/not-cached-model")  # HF_HUB_OFFLINE=1 in conftest


def test_load_config_from_the_local_hf_cache(tmp_path, monkeypatch):
    snap = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(load("qwen2.5-0.5b")))
    refs = tmp_path / "hub" / "models--acme--tiny" / "refs"
    refs.mkdir()
    (refs / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert load_config("acme/tiny")["hidden_size"] == 896
