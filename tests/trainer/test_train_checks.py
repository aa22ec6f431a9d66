"""`tunedoc train` checks the model, the profile and the data before a run directory exists: a bad one is one
sentence each, all of them at once, exit code 2, and nothing created under --runs-dir."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tunedoc.trainer.modelcheck import check_model

GOOD_ROW = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def tunedoc(*args, env=None, timeout=120):
    full = {**os.environ, "HF_HUB_OFFLINE": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", "tunedoc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=full)


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(GOOD_ROW) + "\n")
    return path


def model_folder(path, config='{"model_type": "llama"}', tokenizer=True):
    path.mkdir(parents=True)
    if config is not None:
        (path / "config.json").write_text(config)
    if tokenizer:
        (path / "tokenizer.json").write_text("{}")
    return path


def assert_refused(out, runs, *words):
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    for word in words:
        assert word in out.stderr, out.stderr
    assert not runs.exists() or not any(runs.iterdir()), "a run directory was created for a bad model"


def test_an_empty_folder_is_refused_before_a_run_exists(tmp_path, data):
    empty = tmp_path / "empty"
    empty.mkdir()
    runs = tmp_path / "runs"
    out = tunedoc("train", "--model", empty, "--data", data, "--runs-dir", runs, "--profile", "qlora-min")
    assert_refused(out, runs, "has no config.json")


def test_a_config_that_is_not_json_is_refused_with_its_line(tmp_path, data):
    folder = model_folder(tmp_path / "m", config='{"model_type": "llama",\n')
    runs = tmp_path / "runs"
    out = tunedoc("train", "--model", folder, "--data", data, "--runs-dir", runs, "--profile", "qlora-min")
    assert_refused(out, runs, "config.json is not valid JSON", "config.json:2:")


def test_a_folder_without_tokenizer_files_is_refused(tmp_path):
    assert "no tokenizer files" in check_model(str(model_folder(tmp_path / "m", tokenizer=False)))
    assert check_model(str(model_folder(tmp_path / "ok"))) is None


def test_an_uncached_hub_id_while_offline_is_refused_without_the_network(tmp_path, data):
    runs = tmp_path / "runs"
    out = tunedoc("train", "--model", "nobody/no-such-model", "--data", data, "--runs-dir", runs,
                  "--profile", "qlora-min", env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache")})
    assert_refused(out, runs, "nobody/no-such-model", "not in the local cache", "HF_HUB_OFFLINE")


def test_a_cached_hub_model_passes_while_offline(tmp_path, monkeypatch):
    # the layout huggingface_hub writes: models--owner--name/{refs/main, snapshots/<commit>/...}
    repo = tmp_path / "cache" / "models--owner--tiny"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    model_folder(repo / "snapshots" / commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "cache"))
    assert check_model("owner/tiny") is None
    assert "not in the local cache" in check_model("owner/other")


def test_an_unreachable_endpoint_gives_up_quickly_and_names_it(tmp_path):
    # a server that accepts the connection and never answers: the look-up must time out, not hang
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    try:
        os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
        t0 = time.monotonic()
        problem = check_model("owner/some-model", timeout=1.0)
        took = time.monotonic() - t0
    finally:
        os.environ.pop("HF_ENDPOINT", None)
        server.close()
    assert problem and f"127.0.0.1:{port}" in problem and "hf-mirror.com" in problem, problem
    assert took < 30, f"the look-up waited {took:.0f} s"


def test_profile_syntax_error_and_data_problems_are_reported_together(tmp_path):
    folder = model_folder(tmp_path / "m")
    bad_profile = tmp_path / "bad.toml"
    bad_profile.write_text("lora_r = 8\nlr 1e-4\n")
    bad_data = tmp_path / "data.jsonl"
    bad_data.write_text('{"messages": [}\n')
    runs = tmp_path / "runs"
    out = tunedoc("train", "--model", folder, "--data", bad_data, "--profile", bad_profile, "--runs-dir", runs)
    assert_refused(out, runs, f"{bad_profile}:2:4", "TOML syntax error")
    assert "data.jsonl:1:" in out.stderr, out.stderr
