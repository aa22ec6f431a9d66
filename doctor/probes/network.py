"""Can this machine reach its model sources? The Hub (or the HF_ENDPOINT mirror, and then huggingface.co too) and
ModelScope, each asked once for a cheap URL, concurrently, with a short timeout.

    probe_reach(facts)                  # fills facts.hf.reach (and .proxy, .reach_timeout_s); never raises
    probe_reach(facts, offline=True)    # checks nothing; facts.hf.reach_skipped says why

Each check runs in its own daemon thread and the probe waits for them until one deadline (TIMEOUT_S and a little):
a name lookup that hangs past the socket timeout (getaddrinfo has none) is recorded as a timeout and left behind,
so the probe never takes longer than the deadline, and the doctor's other probes run alongside it meanwhile.
Requests go through httpx, the client huggingface_hub downloads with, so HTTPS_PROXY/HTTP_PROXY/NO_PROXY and the
CA bundle are the ones a download would meet. The status counts; at most 64 KiB of body is read.
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import threading
import time

from tunedoc.doctor.facts import Facts, Reach

HUB = "https://huggingface.co"  # checked as itself when HF_ENDPOINT points at a mirror (tests point it elsewhere)
TIMEOUT_S = 3.0
_GRACE_S = 0.5  # past the timeout, for the client to give up by itself before a check is declared hung
_PATHS = {"hub": "/api/models?limit=1", "mirror": "/api/models?limit=1", "modelscope": "/openapi/v1/models?page_size=1"}
_OFFLINE_TRUE = ("1", "on", "true", "yes")


def targets() -> list[tuple[str, str]]:
    """(role, endpoint) to check: the configured endpoint, huggingface.co itself behind a mirror, ModelScope.
    The endpoints are the ones `tunedoc models`/`download` use (models.hub / models.modelscope, read now)."""
    from tunedoc.models import hub, modelscope  # stdlib-only at import: huggingface_hub loads on first use

    ep = hub.endpoint()
    out = [("hub", HUB)] if ep == hub.DEFAULT_ENDPOINT else [("mirror", ep), ("hub", HUB)]
    return out + [("modelscope", modelscope.endpoint())]


def proxy_in_use() -> str | None:
    """The proxy a request to the Hub would take, without its credentials (user:password@ is dropped)."""
    env = os.environ
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy"):
        value = (env.get(var) or "").strip()
        if value:
            return re.sub(r"^([a-z][a-z0-9+.-]*://)?[^/@]*@", r"\1", value, flags=re.I)
    return None


def probe_reach(facts: Facts, timeout: float | None = None, offline: bool = False) -> None:
    h = facts.hf
    timeout = timeout or TIMEOUT_S
    flag = (os.environ.get("HF_HUB_OFFLINE") or "").strip().lower()
    if offline or flag in _OFFLINE_TRUE:
        h.reach, h.reach_skipped = None, "--offline" if offline else f"HF_HUB_OFFLINE={os.environ['HF_HUB_OFFLINE']}"
        return
    h.proxy = proxy_in_use()
    h.reach_timeout_s = timeout
    h.reach = check_all(targets(), timeout)


def check_all(roles: list[tuple[str, str]], timeout: float) -> list[Reach]:
    """One thread per endpoint; whatever has not answered by the deadline is a timeout."""
    done: dict[str, Reach] = {}
    lock = threading.Lock()

    def one(role: str, endpoint: str) -> None:
        r = check(role, endpoint, timeout)
        with lock:
            done[role] = r

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=rt, name=f"reach-{rt[0]}", daemon=True) for rt in roles]
    for t in threads:
        t.start()
    deadline = t0 + timeout + _GRACE_S
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    out = []
    with lock:
        for role, endpoint in roles:
            out.append(done.get(role) or Reach(
                role, endpoint, endpoint + _PATHS[role], error="timeout",
                latency_ms=round((time.monotonic() - t0) * 1000),
                detail=f"no answer within {timeout:g} s (the name lookup or the connection hung)"))
    return out


def check(role: str, endpoint: str, timeout: float) -> Reach:
    """Ask `endpoint` for one cheap URL; the answer's status, or the kind of failure. Never raises."""
    url = endpoint + _PATHS[role]
    r = Reach(role, endpoint, url)
    t0 = time.perf_counter()
    try:
        httpx = _httpx()
        from tunedoc import __version__

        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=True,
                          headers={"User-Agent": f"tunedoc/{__version__} (doctor)"}) as client:
            with client.stream("GET", url) as resp:
                r.status = resp.status_code
                r.latency_ms = round((time.perf_counter() - t0) * 1000)
                _drain(resp)
        r.ok = r.status < 500
        if r.status == 407:  # the proxy itself answered: the endpoint was never reached
            r.ok, r.error = False, "proxy"
            r.detail = "HTTP 407: the proxy wants a login (user:password in HTTPS_PROXY)"
        elif 300 <= r.status < 400 and _host(resp.headers.get("location", "")) not in ("", _host(url)):
            # a login page or filter (captive portal, company gateway) sent us elsewhere: not the endpoint's answer
            r.ok, r.error = False, "http"
            r.detail = f"HTTP {r.status} to {_host(resp.headers['location'])}: a login page or a filter, not {_host(url)}"
        elif not r.ok:
            r.error, r.detail = "http", f"HTTP {r.status}"
    except Exception as e:  # noqa: BLE001 - every failure is a fact about the network, never a crashed probe
        r.error, r.detail = classify(e)
    if r.latency_ms is None:
        r.latency_ms = round((time.perf_counter() - t0) * 1000)
    return r


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "").lower()


def _drain(resp, limit: int = 64 * 1024) -> None:
    """Read a small body to its end, so the connection closes cleanly; stop reading a big one (a home page)."""
    try:
        seen = 0
        for chunk in resp.iter_bytes():
            seen += len(chunk)
            if seen > limit:
                return
    except Exception:  # noqa: BLE001 - the status is what counts; a body cut short changes nothing
        pass


def _httpx():
    try:
        import httpx2 as httpx  # what huggingface_hub 2.x downloads with
    except ImportError:
        import httpx  # huggingface_hub 1.x
    return httpx


def classify(exc: BaseException) -> tuple[str, str]:
    """(kind, first line) of a failed request: dns | timeout | refused | reset | tls | proxy | other."""
    chain, e = [], exc
    while e is not None and len(chain) < 10 and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = next((str(x).strip().splitlines()[0] for x in chain if str(x).strip()), type(exc).__name__)
    names = " ".join(type(x).__name__ for x in chain)
    if "ProxyError" in names:
        kind = "proxy"
    elif any(isinstance(x, socket.gaierror) for x in chain) or re.search(
            r"Name or service not known|nodename nor servname|getaddrinfo failed|Temporary failure in name "
            r"resolution|No address associated", text):
        kind = "dns"
    elif any(isinstance(x, (TimeoutError, socket.timeout)) for x in chain) or "Timeout" in names:
        kind = "timeout"
    elif any(isinstance(x, ConnectionRefusedError) for x in chain) or "refused" in text.lower():
        kind = "refused"
    elif any(isinstance(x, (ConnectionResetError, ConnectionAbortedError, ssl.SSLEOFError)) for x in chain) or \
            re.search(r"reset by peer|UNEXPECTED_EOF|forcibly closed", text, re.I):
        kind = "reset"
    elif any(isinstance(x, ssl.SSLError) for x in chain) or "CERTIFICATE" in text.upper():
        kind = "tls"
    else:
        kind = "other"
    return kind, text[:300]

