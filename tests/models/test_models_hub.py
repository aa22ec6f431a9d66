"""Search and model info against the fake Hub, and the errors a user gets."""

from __future__ import annotations

import pytest
from fakehub import TINY_WEIGHTS as WEIGHTS
from unreachable import KINDS, failing

from tunedoc.models import hub as hubmod
from tunedoc.models.errors import HubError


def test_endpoint_follows_hf_endpoint_at_call_time(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.com/")
    assert hubmod.endpoint() == "https://hf-mirror.com"
    monkeypatch.delenv("HF_ENDPOINT")
    assert hubmod.endpoint() == "https://huggingface.co"


def test_search_returns_sizes_licenses_and_estimator_support(hub):
    hits = hubmod.search("tiny")
    assert [h.id for h in hits] == ["org/tiny", "org/tiny-instruct"]  # most downloaded first
    top = hits[0]
    assert top.downloads == 500 and top.likes == 7 and top.license == "apache-2.0"
    assert top.size_bytes == WEIGHTS // 4 * 4 and top.params == WEIGHTS // 4
    assert top.model_type == "llama" and top.supported is True
    assert hubmod.search("mystery")[0].supported is False
    assert hubmod.search("org", limit=1)[0].id == "org/tiny"
    assert hubmod.search("no-such-thing") == []


def test_info_lists_files_with_sizes_hashes_and_the_commit(hub):
    mi = hubmod.info("org/tiny")
    repo = hub.repos["org/tiny"]
    assert mi.sha == repo.sha
    files = {f.name: f for f in mi.files}
    st = repo.files["model.safetensors"]
    assert files["model.safetensors"].size == st.size and files["model.safetensors"].sha256 == st.sha256
    assert files["config.json"].sha256 is None and files["config.json"].blob_id == repo.files["config.json"].blob_id
    assert mi.total_size == sum(f.size for f in repo.files.values())
    assert mi.gated is False and mi.license == "apache-2.0" and mi.supported is True
    assert hubmod.info("org/gated").gated == "manual"  # info is public, files are not


@pytest.mark.parametrize("repo, revision, kind, words", [
    ("org/nope", None, "not_found", "org/nope was not found"),
    ("org/tiny", "v9", "not_found", "revision 'v9'"),
    ("not a/valid/id", None, "bad_input", "owner/name"),
    ("org/has space", None, "bad_input", "owner/name"),
])
def test_info_errors_name_the_problem(hub, repo, revision, kind, words):
    with pytest.raises(HubError) as e:
        hubmod.info(repo, revision)
    assert e.value.kind == kind and words in str(e.value)


def test_unreachable_endpoint_suggests_a_mirror(hf_home, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(HubError) as e:
        hubmod.search("llama")
    assert e.value.kind == "network"
    assert "HF_ENDPOINT" in e.value.hint and "hf-mirror.com" in e.value.hint


def test_token_comes_from_hf_token_or_the_saved_file(hf_home, monkeypatch):
    assert hubmod.resolve_token() is None
    hf_home.mkdir(parents=True, exist_ok=True)
    (hf_home / "token").write_text("hf_saved\n")
    assert hubmod.resolve_token() == "hf_saved"
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert hubmod.resolve_token() == "hf_env"
    assert hubmod.resolve_token("hf_given") == "hf_given"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("op", ["search", "info", "download"])
def test_every_way_of_not_reaching_the_hub_names_the_endpoint_and_both_ways_out(hf_home, monkeypatch, op, kind):
    """A name that does not resolve, a port nobody listens on, a TLS connection reset after the ClientHello, a
    server that never answers: each gives one network error naming the endpoint tried, the mirror and ModelScope."""
    from tunedoc.models import download

    monkeypatch.setattr(hubmod, "LOOKUP_TIMEOUT_S", 1.5)
    calls = {"search": lambda: hubmod.search("llama"), "info": lambda: hubmod.info("org/tiny"),
             "download": lambda: download.download("org/tiny")}
    with failing(kind) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        with pytest.raises(HubError) as e:
            calls[op]()
    err = e.value
    assert err.kind == "network", (err.kind, str(err))
    assert f"cannot reach {url}" in err.message
    assert "HF_ENDPOINT=https://hf-mirror.com" in err.hint and "--source modelscope" in err.hint
    assert not list(hf_home.rglob("*.incomplete"))  # nothing half-written for a host that never answered
