"""`tunedoc models|download|login` end to end, in a subprocess, against the fake Hub."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest


def run(*args, stdin="", env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "tunedoc", *args], input=stdin, capture_output=True, text=True,
                          timeout=120, env=env)


def test_download_json_lines_then_list_then_rm(hub, hf_home):
    out = run("download", "org/tiny", "--json")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert lines[0]["type"] == "plan" and lines[0]["fits"] and lines[0]["needed_bytes"] > 1_500_000
    assert any(x["type"] == "progress" for x in lines)
    done = lines[-1]
    assert done["type"] == "done" and done["files"] == 5 and os.path.isdir(done["path"])
    assert done["downloaded_bytes"] == lines[0]["total_bytes"]

    listing = json.loads(run("models", "--json").stdout)
    assert [m["repo"] for m in listing["models"]] == ["org/tiny"]
    table = run("models")
    assert "org/tiny" in table.stdout and "main" in table.stdout

    refused = run("models", "rm", "org/tiny")  # stdin is not a terminal: no silent deletes
    assert refused.returncode == 2 and "--yes" in refused.stderr
    gone = run("models", "rm", "org/tiny", "--yes", "--json")
    assert gone.returncode == 0 and json.loads(gone.stdout)["freed_bytes"] == listing["models"][0]["size"]
    assert json.loads(run("models", "--json").stdout)["models"] == []


def test_search_and_info(hub):
    res = run("models", "search", "tiny", "--json")
    assert res.returncode == 0
    ids = [r["id"] for r in json.loads(res.stdout)["results"]]
    assert ids == ["org/tiny", "org/tiny-instruct"]
    table = run("models", "search", "tiny").stdout
    assert "apache-2.0" in table and "llama (yes)" in table
    info = json.loads(run("models", "info", "org/tiny", "--json").stdout)
    assert info["download"]["files"] == [".gitattributes", "README.md", "config.json", "model.safetensors",
                                         "tokenizer_config.json"]
    assert any("pytorch_model.bin" in s for s in info["download"]["skipped"])


def test_gated_and_missing_are_clear_errors(hub):
    gated = run("download", "org/gated")
    assert gated.returncode == 1
    assert f"accept the license at {hub.url}/org/gated" in gated.stderr and "tunedoc login" in gated.stderr
    missing = run("download", "org/nope", "--json")
    assert missing.returncode == 1
    assert json.loads(missing.stdout.splitlines()[-1])["kind"] == "not_found"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_login_stores_the_token_like_huggingface_hub_and_never_prints_it(hub, hf_home):
    bad = run("login", stdin="hf_wrong\n")
    assert bad.returncode == 1 and "rejected" in bad.stderr
    ok = run("login", stdin="hf_good\n")
    assert ok.returncode == 0, ok.stderr
    assert "tester" in ok.stderr and "hf_good" not in ok.stdout + ok.stderr
    token_file = hf_home / "token"
    assert token_file.read_text() == "hf_good"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "hf_good" in (hf_home / "stored_tokens").read_text()
    # and the stored token opens the gated repo
    assert run("download", "org/gated", "--json").returncode == 0
