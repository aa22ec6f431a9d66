"""Fixtures for the models tests: a fake Hub on 127.0.0.1 and an isolated HF_HOME per test."""

from __future__ import annotations

import pytest
from fakehub import TINY_WEIGHTS, FakeHub, FakeRepo, tiny_llama_files

WEIGHTS = TINY_WEIGHTS


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def hub(hf_home, monkeypatch):
    repos = [
        FakeRepo("org/tiny", tiny_llama_files(WEIGHTS), downloads=500, likes=7, params={"F32": WEIGHTS // 4}),
        FakeRepo("org/tiny-instruct", tiny_llama_files(20_000, seed=1), downloads=90),
        FakeRepo("org/gated", tiny_llama_files(20_000, seed=2), gated="manual", granted={"hf_good"},
                 license="llama3"),
        FakeRepo("other/mystery", tiny_llama_files(20_000, seed=3), model_type="mamba", downloads=3),
    ]
    with FakeHub(repos) as h:
        monkeypatch.setenv("HF_ENDPOINT", h.url)
        yield h
