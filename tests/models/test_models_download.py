"""Downloads against the fake Hub: the cache layout, safetensors preference, resume, verification, errors."""

from __future__ import annotations

import errno
import hashlib
import threading
from collections import namedtuple
from pathlib import Path

import pytest

from tunedoc.models import download as dl
from tunedoc.models.errors import HubError


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_full_download_lands_in_the_hf_cache_verified(hub, hf_home):
    events = []
    snap = dl.download("org/tiny", on_progress=events.append)
    repo = hub.repos["org/tiny"]
    assert snap == hf_home / "hub" / "models--org--tiny" / "snapshots" / repo.sha
    assert sorted(p.name for p in snap.iterdir()) == [
        ".gitattributes", "README.md", "config.json", "model.safetensors", "tokenizer_config.json"]
    assert _sha(snap / "model.safetensors") == repo.files["model.safetensors"].sha256
    assert (snap / "config.json").read_bytes() == repo.files["config.json"].data
    assert (snap.parents[1] / "refs" / "main").read_text() == repo.sha
    assert not list((snap.parents[1] / "blobs").glob("*.incomplete"))
    # huggingface_hub itself finds the files offline, so transformers will too
    from huggingface_hub import try_to_load_from_cache

    assert try_to_load_from_cache("org/tiny", "model.safetensors", cache_dir=hf_home / "hub") == str(
        snap / "model.safetensors")
    # the .bin twin was never requested
    assert "pytorch_model.bin" not in hub.bytes_served
    # progress: monotonic, ends complete
    dones = [e.done for e in events]
    assert dones == sorted(dones) and events[-1].done == events[-1].total == repo.files["model.safetensors"].size + \
        sum(f.size for n, f in repo.files.items() if n not in ("model.safetensors", "pytorch_model.bin"))
    assert events[-1].files_done == events[-1].files_total == 5


def test_a_second_download_fetches_nothing(hub):
    dl.download("org/tiny")
    hub.reset_counters()
    p = dl.plan("org/tiny")
    assert p.needed_bytes == 0 and all(f.complete for f in p.files)
    dl.download("org/tiny")
    assert sum(hub.bytes_served.values()) == 0


def test_include_overrides_the_safetensors_preference(hub):
    p = dl.plan("org/tiny")
    assert "pytorch_model.bin" not in {f.name for f in p.files}
    assert any(s.startswith("pytorch_model.bin: safetensors present") for s in p.skipped)
    snap = dl.download("org/tiny", include=["*.bin", "config.json"])
    assert sorted(x.name for x in snap.iterdir()) == ["config.json", "pytorch_model.bin"]
    with pytest.raises(HubError) as e:
        dl.plan("org/tiny", include="*.gguf")
    assert e.value.kind == "bad_input"


def test_interrupted_download_resumes_with_only_the_missing_bytes(hub, hf_home):
    size = hub.repos["org/tiny"].files["model.safetensors"].size
    hub.throttle_bps = 4_000_000  # slow enough to stop it mid-file
    cancel = threading.Event()

    def stop_midway(pr):
        if pr.file == "model.safetensors" and pr.file_done > size // 3:
            cancel.set()

    with pytest.raises(HubError) as e:
        dl.download("org/tiny", on_progress=stop_midway, cancel=cancel)
    assert e.value.kind == "cancelled" and "resume" in e.value.hint
    first = hub.bytes_served["model.safetensors"]
    assert 0 < first < size
    partial = list((hf_home / "hub" / "models--org--tiny" / "blobs").glob("*.incomplete"))
    assert len(partial) == 1 and 0 < partial[0].stat().st_size <= first
    kept = partial[0].stat().st_size

    hub.throttle_bps = None
    hub.reset_counters()
    assert dl.plan("org/tiny").present_bytes >= kept
    snap = dl.download("org/tiny")
    assert hub.bytes_served["model.safetensors"] == size - kept  # only the rest went over the wire
    assert [r["range"] for r in hub.requests if r["role"] == "cdn"] == [f"bytes={kept}-"]
    assert _sha(snap / "model.safetensors") == hub.repos["org/tiny"].files["model.safetensors"].sha256


def test_a_dropped_connection_is_resumed_within_the_same_run(hub):
    hub.drop_after["model.safetensors"] = 500_000
    snap = dl.download("org/tiny")
    size = hub.repos["org/tiny"].files["model.safetensors"].size
    assert hub.bytes_served["model.safetensors"] == size
    assert [r["range"] for r in hub.requests if r["role"] == "cdn"] == [None, "bytes=500000-"]
    assert (snap / "model.safetensors").stat().st_size == size


def test_gated_repo_without_then_with_a_token(hub, monkeypatch):
    with pytest.raises(HubError) as e:
        dl.download("org/gated")
    assert e.value.kind == "gated" and "401" in e.value.message
    assert f"{hub.url}/org/gated" in e.value.hint and "tunedoc login" in e.value.hint and "HF_TOKEN" in e.value.hint
    with pytest.raises(HubError) as e:
        dl.download("org/gated", token="hf_other")  # a valid account that was not granted access
    assert e.value.kind == "gated" and "403" in e.value.message
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    snap = dl.download("org/gated")
    assert (snap / "model.safetensors").is_file()
    cdn = [r for r in hub.requests if r["role"] == "cdn"]
    assert cdn and not any(r["auth"] for r in cdn), "the token must not be sent to the CDN host"


def test_missing_repo_and_revision(hub):
    with pytest.raises(HubError) as e:
        dl.download("org/nope")
    assert e.value.kind == "not_found" and "org/nope" in e.value.message
    with pytest.raises(HubError) as e:
        dl.download("org/tiny", revision="no-such-branch")
    assert e.value.kind == "not_found" and "no-such-branch" in e.value.message


def test_not_enough_disk_is_refused_before_anything_is_written(hub, hf_home, monkeypatch):
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda path: Usage(10**12, 10**12 - 1_000_000, 1_000_000))
    p = dl.plan("org/tiny")
    assert not p.fits and p.free_bytes == 1_000_000
    with pytest.raises(HubError) as e:
        dl.download("org/tiny")
    assert e.value.kind == "disk"
    assert "1.5 MB" in e.value.message and "1.0 MB free" in e.value.message
    assert sum(hub.bytes_served.values()) == 0
    assert not (hf_home / "hub" / "models--org--tiny").exists()


def test_disk_full_midway_keeps_the_partial_file_as_incomplete(hub, hf_home, monkeypatch):
    real_open = open

    class FullDisk:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, b):
            if self.written + len(b) > 300_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(b)
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    sha = hub.repos["org/tiny"].files["model.safetensors"].sha256

    def fake_open(path, mode="r", *a, **kw):  # the weights' partial file hits a full disk after 300 kB
        f = real_open(path, mode, *a, **kw)
        return FullDisk(f) if Path(path).name == f"{sha}.incomplete" else f

    monkeypatch.setattr(dl, "open", fake_open, raising=False)
    with pytest.raises(HubError) as e:
        dl.download("org/tiny")
    assert e.value.kind == "disk" and "resume" in e.value.hint
    storage = hf_home / "hub" / "models--org--tiny"
    assert not (storage / "blobs" / sha).exists(), "a half-written file must never become a complete blob"
    assert not (storage / "snapshots" / hub.repos["org/tiny"].sha / "model.safetensors").exists()
    assert (storage / "blobs" / f"{sha}.incomplete").exists()


def test_a_corrupted_transfer_is_detected_and_not_kept(hub, hf_home):
    f = hub.repos["org/tiny"].files["model.safetensors"]
    f.data = bytes(len(f.data))  # the server now sends other bytes than the hash it publishes
    with pytest.raises(HubError) as e:
        dl.download("org/tiny")
    assert e.value.kind == "corrupt" and "sha256" in e.value.message
    blobs = hf_home / "hub" / "models--org--tiny" / "blobs"
    assert not (blobs / f.sha256).exists() and not (blobs / f"{f.sha256}.incomplete").exists()
