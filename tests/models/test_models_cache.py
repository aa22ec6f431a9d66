"""The local cache: listing (sizes, revisions, partial downloads, extra folders) and deleting."""

from __future__ import annotations

import threading

import pytest

from tunedoc.models import cache, download as dl
from tunedoc.models.errors import HubError


def test_listing_shows_downloaded_models_with_size_and_revision(hub):
    assert cache.list_cache() == []
    dl.download("org/tiny")
    dl.download("org/tiny-instruct")
    models = cache.list_cache()
    assert [m.repo for m in models] == ["org/tiny", "org/tiny-instruct"]  # largest first
    tiny = models[0]
    files = hub.repos["org/tiny"].files
    assert tiny.size == sum(f.size for n, f in files.items() if n != "pytorch_model.bin")
    assert [(r.commit, r.refs, r.files) for r in tiny.revisions] == [(hub.repos["org/tiny"].sha, ["main"], 5)]
    assert tiny.last_used is not None and tiny.incomplete_bytes == 0


def test_partial_downloads_are_listed_as_resumable(hub):
    hub.throttle_bps = 3_000_000
    cancel = threading.Event()
    with pytest.raises(HubError):
        dl.download("org/tiny", cancel=cancel,
                    on_progress=lambda p: cancel.set() if p.file == "model.safetensors" and p.file_done > 0 else None)
    m = cache.find("org/tiny")
    assert m is not None and m.incomplete_bytes > 0


def test_extra_dirs_list_plain_model_folders(hub, tmp_path):
    folder = tmp_path / "my-models" / "run1-merged"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"x" * 1000)
    models = cache.list_cache(extra_dirs=[tmp_path / "my-models"])
    assert [(m.repo, m.size, m.source) for m in models] == [("run1-merged", 1002, "folder")]
    with pytest.raises(HubError) as e:
        cache.list_cache(extra_dirs=[tmp_path / "missing"])
    assert e.value.kind == "bad_input"


def test_remove_frees_the_bytes_and_the_folder(hub, hf_home):
    dl.download("org/tiny")
    size = cache.find("org/tiny").size
    assert cache.remove("org/tiny") == size
    assert not (hf_home / "hub" / "models--org--tiny").exists()
    assert cache.list_cache() == []
    with pytest.raises(HubError) as e:
        cache.remove("org/tiny")
    assert e.value.kind == "not_found"


def test_remove_one_revision_by_branch_name(hub):
    repo = hub.repos["org/tiny-instruct"]
    repo.branches["old"] = "1" * 40  # a second commit with other bytes in one file
    dl.download("org/tiny-instruct")
    f = repo.files["README.md"]
    repo.files["README.md"] = type(f)("README.md", b"# changed\n")
    dl.download("org/tiny-instruct", revision="old")
    assert len(cache.find("org/tiny-instruct").revisions) == 2
    freed = cache.remove("org/tiny-instruct", revision="old")
    assert freed == len(b"# changed\n")  # the other files are shared with main and stay
    left = cache.find("org/tiny-instruct")
    assert [r.refs for r in left.revisions] == [["main"]]
    with pytest.raises(HubError) as e:
        cache.remove("org/tiny-instruct", revision="nope")
    assert e.value.kind == "not_found" and "main" in e.value.hint
