"""`--source modelscope` end to end, in subprocesses, through the real `modelscope` library against a stand-in
ModelScope server of ours (fakemodelscope.py, reached through MODELSCOPE_DOMAIN): search, info, a download killed
half way then resumed with an HTTP Range, byte-exact files, a missing repo, `tunedoc models` listing both caches,
and `models rm`."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("modelscope_hub", reason="the [modelscope] extra is not installed")

from fakemodelscope import FakeModelScope  # noqa: E402
from unreachable import answering  # noqa: E402

WEIGHTS = os.urandom(3_000_000)
REPOS = {"Qwen/Tiny-Chat": {"config.json": b'{"model_type": "llama", "hidden_size": 64}',
                            "model.safetensors": WEIGHTS, "tokenizer/tokenizer.json": b'{"version": "1.0"}'},
         "Qwen/Other-Base": {"config.json": b"{}"}}


@pytest.fixture
def ms(tmp_path, hf_home, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    with FakeModelScope(REPOS) as server:
        monkeypatch.setenv("MODELSCOPE_DOMAIN", server.url)
        yield server


def run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "tunedoc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def test_search_and_info(ms):
    r = run("models", "search", "tiny", "--source", "modelscope", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [h["id"] for h in out["results"]] == ["Qwen/Tiny-Chat"] and out["results"][0]["downloads"] == 1234
    assert out["endpoint"] == ms.url and ("GET", "/openapi/v1/models?search=tiny&page_number=1&page_size=20",
                                          None) in ms.requests
    r = run("models", "info", "modelscope://Qwen/Tiny-Chat")
    assert r.returncode == 0, r.stderr
    assert "Qwen/Tiny-Chat @ master (ModelScope" in r.stdout and "model.safetensors" in r.stdout
    assert "3.0 MB" in r.stdout and "license Apache License 2.0" in r.stdout


def test_a_missing_repo_says_so_and_how_to_check(ms):
    for args in (("models", "info", "Qwen/Nope", "--source", "modelscope"),
                 ("download", "modelscope://Qwen/Nope")):
        r = run(*args)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert "Qwen/Nope was not found on ModelScope" in r.stderr and f"{ms.url}/models/Qwen/Nope" in r.stderr


def test_download_killed_half_way_resumes_byte_exact_then_models_lists_both_caches_and_rm(ms, tmp_path):
    ms.slow = 0.2  # ~10 s for the weights: time to kill it half way
    cache = Path(os.environ["MODELSCOPE_CACHE"])
    proc = subprocess.Popen([sys.executable, "-m", "tunedoc", "download", "Qwen/Tiny-Chat", "--source", "modelscope",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    deadline = time.monotonic() + 60
    partial = []
    while time.monotonic() < deadline and not partial:
        partial = [f for f in cache.rglob("*.incomplete") if f.stat().st_size >= 65536]
        time.sleep(0.05)
    assert partial, "no partial file appeared"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    had = partial[0].stat().st_size
    assert had < len(WEIGHTS)
    listing = json.loads(run("models", "--json").stdout)["modelscope"]["models"]
    assert listing[0]["repo"] == "Qwen/Tiny-Chat" and listing[0]["incomplete_bytes"] >= had

    ms.slow = 0.0
    ms.requests.clear()
    r = run("download", "Qwen/Tiny-Chat", "--source", "modelscope", "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines[0]["type"] == "plan" and lines[0]["fits"] and lines[-1]["type"] == "done"
    progress = [x for x in lines if x["type"] == "progress"]
    weights = [x for x in progress if x["file"].endswith("model.safetensors")]
    assert weights and weights[-1]["file_done"] == weights[-1]["file_total"] == len(WEIGHTS), progress
    ranges = [rng for _, path, rng in ms.requests if "model.safetensors" in path]
    assert ranges and ranges[0] is not None and int(ranges[0].split("=")[1].split("-")[0]) >= had  # resumed
    snap = Path(lines[-1]["path"])
    for name, body in REPOS["Qwen/Tiny-Chat"].items():
        assert (snap / name).read_bytes() == body, name

    # the Hub's cache and ModelScope's, each with its source
    hf_snap = Path(os.environ["HF_HUB_CACHE"]) / "models--org--hf-one" / "snapshots" / ("a" * 40)
    hf_snap.mkdir(parents=True)
    (hf_snap / "config.json").write_text("{}")
    (hf_snap.parent.parent / "refs").mkdir()
    (hf_snap.parent.parent / "refs" / "main").write_text("a" * 40)
    table = run("models")
    rows = {line.split()[0]: line.split()[1] for line in table.stdout.splitlines()[1:]}
    assert rows == {"org/hf-one": "hf", "Qwen/Tiny-Chat": "modelscope"}, table.stdout

    refused = run("models", "rm", "Qwen/Tiny-Chat", "--source", "modelscope")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    gone = run("models", "rm", "modelscope://Qwen/Tiny-Chat", "--yes", "--json")
    assert gone.returncode == 0 and json.loads(gone.stdout)["freed_bytes"] >= len(WEIGHTS)
    assert json.loads(run("models", "--json").stdout)["modelscope"]["models"] == []


def test_without_the_library_the_fix_is_the_extra(ms, tmp_path):
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "modelscope_hub.py").write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "tunedoc", "models", "search", "x", "--source", "modelscope"],
                       capture_output=True, text=True, timeout=60, env=env, cwd=str(Path(__file__).parents[2]))
    assert r.returncode == 1 and "pip install 'tunedoc[modelscope]'" in r.stderr, r.stderr


def test_a_hub_that_never_answers_names_the_endpoint_and_both_ways_out(hf_home, monkeypatch):
    import socket

    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    try:
        t0 = time.monotonic()
        r = run("models", "search", "qwen", timeout=60)
        took = time.monotonic() - t0
    finally:
        silent.close()
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"cannot reach {url}" in r.stderr
    assert "HF_ENDPOINT=https://hf-mirror.com" in r.stderr and "--source modelscope" in r.stderr
    assert took < 30, took  # one look-up with its own timeout, no retry storm


def test_train_takes_a_downloaded_modelscope_model(tmp_path, hf_home, monkeypatch, tiny_model_dir, identity_jsonl):
    files = {p.name: p.read_bytes() for p in Path(tiny_model_dir).iterdir() if p.is_file()}
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms"))
    with FakeModelScope({"tunedoc/tiny-llama": files}) as server:
        monkeypatch.setenv("MODELSCOPE_DOMAIN", server.url)
        args = ("train", "--model", "modelscope://tunedoc/tiny-llama", "--data", identity_jsonl, "--dry-run",
                "--runs-dir", tmp_path / "runs")
        r = run(*args)
        assert r.returncode == 2 and "tunedoc download tunedoc/tiny-llama --source modelscope" in r.stderr
        assert run("download", "modelscope://tunedoc/tiny-llama").returncode == 0
        r = run(*args)
    assert r.returncode == 0, r.stderr
    snap = tmp_path / "ms" / "models" / "tunedoc--tiny-llama" / "snapshots" / "master"
    assert r.stdout.splitlines()[0].startswith(f"# tunedoc train --model {snap} ")


TQDM_BAR = re.compile(r"\d+%\||\[\d\d:\d\d<")  # tqdm's "  0%|" and "[00:00<00:00"


def test_download_shows_one_progress_display_not_the_librarys_bars(ms):
    for args in ((), ("--json",)):
        r = run("download", "Qwen/Tiny-Chat", "--source", "modelscope", *args)
        assert r.returncode == 0, r.stderr
        assert not TQDM_BAR.search(r.stderr) and "Downloading" not in r.stderr, r.stderr
        shutil.rmtree(os.environ["MODELSCOPE_CACHE"])
    progress = [json.loads(x) for x in r.stdout.splitlines() if '"progress"' in x]
    assert progress[-1]["source"] == "modelscope" and progress[-1]["files_total"] == 3, progress
    assert max(x["done"] for x in progress) == sum(map(len, REPOS["Qwen/Tiny-Chat"].values()))


def test_a_failing_modelscope_is_asked_once_not_five_times_unless_the_user_says_so(hf_home):
    """The library's API calls retry 5 times with backoff (half a minute before the Models screen or `models search`
    reports an unreachable server); tunedoc asks once, through the library's own MODELSCOPE_API_MAX_RETRIES, which a
    user's own value overrides."""
    with answering(503) as server:
        for own, asked in ((None, 1), ("2", 2)):
            server.requests.clear()
            env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSCOPE_API_")}
            env["MODELSCOPE_DOMAIN"] = server
            if own:
                env["MODELSCOPE_API_MAX_RETRIES"] = own
            r = subprocess.run([sys.executable, "-m", "tunedoc", "models", "search", "q", "--source", "modelscope"],
                               capture_output=True, text=True, timeout=120, env=env)
            assert r.returncode == 1 and "503" in r.stderr and "Traceback" not in r.stderr, r.stderr
            assert len(server.requests) == asked, server.requests
