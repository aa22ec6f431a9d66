"""Can the model sources be reached: the doctor's network probe against stand-in servers on 127.0.0.1 (the fake Hub
as a mirror, the fake ModelScope, and endpoints that time out, refuse, reset TLS or do not resolve), the findings
in the Hugging Face area with the ways out for the user's shell, and `doctor --json` / `--offline` / `--from`."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from fakehub import FakeHub, FakeRepo, tiny_llama_files  # noqa: E402
from fakemodelscope import FakeModelScope  # noqa: E402
from unreachable import KINDS, answering, failing  # noqa: E402

from tunedoc.cli import main  # noqa: E402
from tunedoc.doctor import run  # noqa: E402
from tunedoc.doctor.facts import HF, Facts, Reach  # noqa: E402
from tunedoc.doctor.probes import network  # noqa: E402
from tunedoc.doctor.rules import evaluate  # noqa: E402

NOWHERE = "http://tunedoc-unreachable.invalid"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No proxy (not even conftest's dead one), no mirror, no offline flag from the machine running the tests; and
    huggingface.co itself is never contacted: each test points network.HUB at a stand-in."""
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                "no_proxy", "HF_ENDPOINT", "HF_HUB_OFFLINE", "MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(network, "HUB", NOWHERE)


def roles(facts: Facts) -> dict[str, Reach]:
    return {r.role: r for r in facts.hf.reach}


def ids(findings, *sev):
    return [f.id for f in findings if not sev or f.severity in sev]


def one(findings, id_):
    return next(f for f in findings if f.id == id_)


def commands(finding) -> list[str]:
    return [c for fx in finding.fixes for c in fx.commands]


# --- the probe against stand-in servers -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_each_failure_is_recorded_with_its_kind(monkeypatch, kind):
    with failing(kind) as hub, FakeModelScope({"Qwen/Tiny": {"config.json": b"{}"}}) as ms:
        monkeypatch.setattr(network, "HUB", hub)
        monkeypatch.setattr(network, "TIMEOUT_S", 1.5)
        monkeypatch.setenv("MODELSCOPE_DOMAIN", ms.url)
        facts = Facts()
        st = run.run_probe("network", facts)
    assert st.ok  # not answering is a fact about the network, not a failed probe
    r = roles(facts)
    assert set(r) == {"hub", "modelscope"}  # no mirror configured: huggingface.co is the endpoint downloads use
    assert (r["hub"].ok, r["hub"].error, r["hub"].endpoint) == (False, kind, hub)
    assert r["hub"].url.startswith(hub) and r["hub"].detail
    assert r["modelscope"].ok and r["modelscope"].status == 200 and r["modelscope"].latency_ms is not None
    assert facts.hf.reach_timeout_s == 1.5
    warning = one(evaluate(facts), "hf-unreachable")
    assert warning.severity == "warning" and warning.title.endswith("; ModelScope does")


def test_a_mirror_that_answers_while_the_hub_hangs_is_information_not_a_warning(monkeypatch):
    with FakeHub([FakeRepo("org/tiny", tiny_llama_files(1000))]) as mirror, failing("timeout") as hub, \
            failing("refused") as ms:
        monkeypatch.setenv("HF_ENDPOINT", mirror.url)
        monkeypatch.setenv("MODELSCOPE_DOMAIN", ms)
        monkeypatch.setattr(network, "HUB", hub)
        monkeypatch.setattr(network, "TIMEOUT_S", 1.5)
        facts = Facts()
        t0 = time.monotonic()
        run.run_probe("env", facts)
        run.run_probe("hf", facts)
        run.run_probe("network", facts)
        took = time.monotonic() - t0
    r = roles(facts)
    assert [x.role for x in facts.hf.reach] == ["mirror", "hub", "modelscope"]
    assert r["mirror"].ok and r["mirror"].url == f"{mirror.url}/api/models?limit=1"
    assert r["hub"].error == "timeout" and r["modelscope"].error == "refused"
    assert took < 1.5 + 2.5, took  # one timeout for all three, not one after the other
    fs = evaluate(facts)
    assert "hf-unreachable" not in ids(fs)
    info = one(fs, "hf-mirror-only")
    assert info.severity == "info" and mirror.url in info.title
    assert one(fs, "hf-endpoint").title.endswith("which answers")


def test_a_name_lookup_that_hangs_is_cut_at_the_deadline(monkeypatch):
    """getaddrinfo has no timeout of its own: the probe stops waiting for it anyway."""
    release = threading.Event()
    real = socket.getaddrinfo

    def hanging(host, *args, **kw):
        if str(host).startswith("hangs"):
            release.wait(30)
            raise socket.gaierror(-2, "Name or service not known")
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        t0 = time.monotonic()
        out = network.check_all([("hub", "http://hangs.invalid"), ("modelscope", NOWHERE)], timeout=1.0)
        took = time.monotonic() - t0
    finally:
        release.set()
    assert took < 1.0 + 2.0, took
    hub, ms = out
    assert hub.error == "timeout" and "hung" in hub.detail
    assert ms.error == "dns"


def test_requests_go_through_the_proxy_from_the_environment(monkeypatch):
    with answering() as proxy:
        port = proxy.rsplit(":", 1)[1]
        monkeypatch.setenv("HTTP_PROXY", f"http://bob:s3cret@127.0.0.1:{port}")
        monkeypatch.setenv("MODELSCOPE_DOMAIN", NOWHERE)
        facts = Facts()
        run.run_probe("network", facts)
    r = roles(facts)
    # neither name resolves here; the proxy resolves them, and answers
    assert r["hub"].ok and r["modelscope"].ok, facts.hf.reach
    assert any(f"GET {NOWHERE}/api/models?limit=1" in line for line in proxy.requests), proxy.requests
    assert facts.hf.proxy == f"http://127.0.0.1:{port}"  # where it went, never the password
    assert "s3cret" not in json.dumps(facts.to_dict()["hf"])


@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "--offline"])
def test_offline_contacts_nothing_and_says_so(monkeypatch, how):
    with answering() as server:
        monkeypatch.setattr(network, "HUB", server)
        monkeypatch.setenv("MODELSCOPE_DOMAIN", server)
        if how == "HF_HUB_OFFLINE":
            monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        facts = run.probe_all(only=["env", "hf", "network"], offline=how == "--offline")
        assert server.requests == []
    assert facts.hf.reach is None
    assert facts.hf.reach_skipped == ("HF_HUB_OFFLINE=1" if how == "HF_HUB_OFFLINE" else "--offline")
    fs = evaluate(facts)
    assert not {"hf-unreachable", "hf-mirror-only"} & set(ids(fs))
    ok = one(fs, "hf-ok")
    assert "answers" not in ok.title and any("not contacted" in e for e in ok.evidence)
    if how == "HF_HUB_OFFLINE":
        assert any("not contacted" in e for e in one(fs, "hf-offline").evidence)


def test_hanging_sources_do_not_hold_up_the_other_probes(monkeypatch):
    with failing("timeout") as mirror, failing("timeout") as hub, failing("timeout") as ms:
        monkeypatch.setenv("HF_ENDPOINT", mirror)
        monkeypatch.setenv("MODELSCOPE_DOMAIN", ms)
        monkeypatch.setattr(network, "HUB", hub)
        monkeypatch.setattr(network, "TIMEOUT_S", 2.0)
        seen: dict[str, float] = {}
        t0 = time.monotonic()
        facts = run.probe_all(only=["platform", "env", "hf", "network"],
                              on_status=lambda name, st: seen.setdefault(name, time.monotonic() - t0))
        total = time.monotonic() - t0
    assert max(seen["platform"], seen["env"], seen["hf"]) < seen["network"]  # reported while the checks waited
    assert seen["network"] >= 2.0 * 0.9
    assert total < 2.0 + 2.5, total  # the doctor grows by about one timeout, whatever hangs
    assert {r.error for r in facts.hf.reach} == {"timeout"}


# --- the findings: ways out for this shell, and nothing claimed without facts -------------------------------------
def facts_with(*reach: Reach, system="Linux", shell="bash", endpoint="https://huggingface.co") -> Facts:
    f = Facts()
    f.platform.system, f.platform.shell = system, shell
    f.hf = HF(home="/h", hub_cache="/h/hub", endpoint=endpoint, token_present=True, disk_free_bytes=500 << 30,
              disk_total_bytes=1 << 40, cache_bytes=0, reach=list(reach), reach_timeout_s=3.0)
    return f


HUB_OK = Reach("hub", "https://huggingface.co", ok=True, status=200, latency_ms=80)
HUB_DNS = Reach("hub", "https://huggingface.co", error="dns", detail="[Errno -2] Name or service not known")
HUB_RESET = Reach("hub", "https://huggingface.co", error="reset", detail="[Errno 104] Connection reset by peer")
MS_OK = Reach("modelscope", "https://www.modelscope.cn", ok=True, status=200, latency_ms=40)
MS_DOWN = Reach("modelscope", "https://www.modelscope.cn", error="timeout", detail="timed out")


def test_everything_answers_the_ok_line_says_so():
    fs = evaluate(facts_with(HUB_OK, MS_OK))
    assert not ids(fs, "warning", "error")
    ok = one(fs, "hf-ok")
    assert ok.title.endswith("huggingface.co answers")
    assert any("www.modelscope.cn (ModelScope): answers (HTTP 200" in e for e in ok.evidence)


def test_hub_blocked_modelscope_answers_gives_the_three_ways_out_on_linux():
    w = one(evaluate(facts_with(HUB_RESET, MS_OK)), "hf-unreachable")
    assert w.title == "huggingface.co does not answer (connection reset); ModelScope does"
    cmds = commands(w)
    assert cmds[0] == "export HF_ENDPOINT=https://hf-mirror.com" and w.fixes[0].applicable
    assert any("--source modelscope" in c for c in cmds)
    assert "tunedoc train --model /path/to/model-folder --data data.jsonl" in cmds
    assert "ModelScope answers from here" in w.fixes[1].title
    assert not any("HTTPS_PROXY" in c for c in cmds)  # something answers: the network itself works
    assert any("Connection reset by peer" in e for e in w.evidence)


def test_the_modelscope_way_out_asks_for_the_extra_only_where_the_library_is_missing():
    bare = one(evaluate(facts_with(HUB_RESET, MS_OK)), "hf-unreachable")
    assert "needs pip install 'tunedoc[modelscope]'" in bare.fixes[1].title
    f = facts_with(HUB_RESET, MS_OK)
    f.python.packages["modelscope"] = "1.31.0"
    w = one(evaluate(f), "hf-unreachable")
    assert w.fixes[1].title == "Or get the model from ModelScope (ModelScope answers from here)"


def test_the_ways_out_are_powershell_on_windows():
    f = facts_with(HUB_DNS, MS_DOWN, system="Windows", shell="powershell")
    w = one(evaluate(f), "hf-unreachable")
    assert w.title == "huggingface.co does not answer (DNS lookup failed): model downloads will fail"
    cmds = commands(w)
    assert '$env:HF_ENDPOINT = "https://hf-mirror.com"' in cmds
    assert "tunedoc train --model C:\\models\\model-folder --data data.jsonl" in cmds
    assert not any(c.startswith("export ") for c in cmds)
    # nothing answers: the connection and its proxy come first
    assert "check the network" in w.fixes[0].title and w.fixes[0].commands[0].startswith("$env:HTTPS_PROXY")
    assert "ModelScope did not answer either" in next(fx.title for fx in w.fixes if "ModelScope" in fx.title)


def test_a_mirror_that_does_not_answer_while_the_hub_does():
    mirror = Reach("mirror", "https://mirror.example", error="refused", detail="[Errno 111] Connection refused")
    w = one(evaluate(facts_with(mirror, HUB_OK, MS_OK, endpoint="https://mirror.example")), "hf-unreachable")
    assert "mirror.example" in w.title and "huggingface.co does" in w.title
    assert w.fixes[0].commands == ["export HF_ENDPOINT=https://huggingface.co"]


def test_hf_mirror_itself_down_does_not_suggest_itself():
    mirror = Reach("mirror", "https://hf-mirror.com", error="timeout", detail="timed out")
    w = one(evaluate(facts_with(mirror, HUB_DNS, MS_OK, endpoint="https://hf-mirror.com")), "hf-unreachable")
    assert w.title.startswith("Neither the mirror https://hf-mirror.com (HF_ENDPOINT) nor huggingface.co answers")
    assert "export HF_ENDPOINT=https://hf-mirror.com" not in commands(w)
    assert any("--source modelscope" in c for c in commands(w))


def test_unknown_reachability_claims_nothing():
    f = facts_with()
    f.hf.reach = None
    fs = [x for x in evaluate(f) if x.area == "hf"]
    assert ids(fs) == ["hf-ok"]
    assert "answer" not in json.dumps([x.to_dict() for x in fs])


# --- the command ---------------------------------------------------------------------------------------------------
def test_doctor_json_carries_the_reachability_facts(monkeypatch, capsys):
    with failing("reset") as mirror, failing("dns") as hub, FakeModelScope({}) as ms:
        monkeypatch.setenv("HF_ENDPOINT", mirror)
        monkeypatch.setenv("MODELSCOPE_DOMAIN", ms.url)
        monkeypatch.setattr(network, "HUB", hub)
        rc = main(["doctor", "--json"])
    out = capsys.readouterr().out
    data = json.loads(out)
    reach = {r["role"]: r for r in data["facts"]["hf"]["reach"]}
    assert (reach["mirror"]["endpoint"], reach["mirror"]["error"]) == (mirror, "reset")
    assert reach["hub"]["error"] == "dns" and reach["modelscope"]["ok"] is True
    assert data["facts"]["probes"]["network"]["ok"] is True
    w = next(f for f in data["findings"] if f["id"] == "hf-unreachable")
    assert w["severity"] == "warning" and mirror in w["title"]
    assert rc in (0, 1)


def test_doctor_offline_and_a_pasted_report_claim_no_reachability(monkeypatch, capsys, tmp_path):
    with answering() as server:
        monkeypatch.setattr(network, "HUB", server)
        monkeypatch.setenv("MODELSCOPE_DOMAIN", server)
        main(["doctor", "--offline", "--json"])
        assert server.requests == []
    data = json.loads(capsys.readouterr().out)
    assert data["facts"]["hf"]["reach"] is None and data["facts"]["hf"]["reach_skipped"] == "--offline"

    pasted = tmp_path / "pip-list.txt"
    pasted.write_text("Package    Version\n---------- -------\ntorch      2.7.0+cu128\nhuggingface-hub 0.30.0\n")
    main(["doctor", "--from", str(pasted), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["facts"]["hf"]["reach"] is None
    hf = [f for f in data["findings"] if f["area"] == "hf"]
    assert not any(f["id"] in ("hf-unreachable", "hf-mirror-only") or "answer" in f["title"] for f in hf)


def test_a_saved_report_carries_its_reachability_back(tmp_path, capsys):
    """A report saved by tunedoc has the facts: read back with --from, it gives the same finding, redacted."""
    mirror = Reach("mirror", "https://ana:pw123456@mirror.example", error="timeout", detail="timed out")
    f = facts_with(mirror, HUB_DNS, MS_OK, endpoint="https://ana:pw123456@mirror.example")
    saved = tmp_path / "report.json"
    from tunedoc.doctor.cli import save, to_payload

    save(to_payload(f, evaluate(f)), str(saved))
    main(["doctor", "--from", str(saved), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert "pw123456" not in json.dumps(data)
    assert [r["error"] for r in data["facts"]["hf"]["reach"]] == ["timeout", "dns", None]
    w = next(x for x in data["findings"] if x["id"] == "hf-unreachable")
    assert "mirror.example" in w["title"] and w["title"].endswith("; ModelScope does")


@pytest.mark.parametrize("status, headers, error, said", [
    (407, {"Proxy-Authenticate": "Basic"}, "proxy", "the proxy wants a login"),
    (302, {"Location": "http://login.portal.example/?next=hub"}, "http", "to login.portal.example"),
])
def test_a_proxy_login_or_a_captive_portal_is_not_an_answer(status, headers, error, said):
    """A 407 from a proxy that wants a login, or a redirect to a login page on another host, is not the endpoint
    answering: recorded as a failure, so the doctor does not say the Hub is reachable."""
    with answering(status, headers) as server:
        r = network.check("hub", server, timeout=3.0)
    assert r.status == status and not r.ok and r.error == error and said in r.detail
