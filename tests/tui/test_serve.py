"""`tunedoc serve`: the app in a browser through textual-serve, behind the token it prints. A browser is a page plus
a websocket that carries the terminal's bytes; these tests are that browser (and the stranger who has only the
address): the real server runs as a subprocess on a free port, and the URL is read from what it prints."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.tui.serve_fixtures import Served, free_port, start, stop


@pytest.fixture
def server(tmp_path):
    served = start(tmp_path)
    yield served
    stop(served)


def run(coro):
    return asyncio.run(coro)


async def handshake_status(url: str, **kwargs) -> int:
    """101 when the websocket opens, else the HTTP status the server refused it with."""
    async with aiohttp.ClientSession() as s:
        try:
            async with s.ws_connect(url, **kwargs):
                return 101
        except aiohttp.WSServerHandshakeError as error:
            return error.status


def test_the_printed_url_lets_in_and_the_bare_address_does_not(server):
    assert "listening on localhost:" in server.output and "only this machine can connect" in server.output
    assert server.url == f"{server.base}/?token={server.token}" and len(server.token) >= 43  # token_urlsafe(32)

    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.get(server.base + "/") as r:
                assert r.status == 401, r.status
                assert "printed when it started" in await r.text()
            async with s.get(server.base + "/?token=" + "x" * 43) as r:
                assert r.status == 403
            async with s.get(server.base + "/download/anything") as r:
                assert r.status == 401  # the app's downloads are behind the token too
            async with s.get(server.base + "/static/js/textual.js") as r:
                assert r.status == 200  # the terminal's JS is the same for everyone
            async with s.get(server.url, allow_redirects=False) as r:
                assert r.status == 302 and r.headers["Location"] == "/"  # the token leaves the address bar
                cookie = r.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and server.token in cookie
            async with s.get(server.url) as r:
                html = await r.text()
                assert r.status == 200 and str(r.url) == server.base + "/"
            async with s.get(server.base + "/") as r:
                assert r.status == 200  # a reload: the cookie lets it in
        return html

    html = run(go())
    assert "textual.js" in html and f"ws://localhost:{server.port}/ws" in html
    assert "googleapis" not in html  # nothing from a host that is blocked or slow behind a firewall


def test_the_websocket_needs_the_token_and_the_servers_own_origin(server):
    ws = f"ws://localhost:{server.port}/ws"
    cookie = {"Cookie": f"tunedoc-serve-{server.port}={server.token}"}
    assert run(handshake_status(ws)) == 401
    assert run(handshake_status(ws, headers={"Origin": server.base})) == 401  # own Origin, no token
    assert run(handshake_status(ws, headers={**cookie, "Origin": "http://evil.example"})) == 403
    assert run(handshake_status(f"{ws}?token={server.token}", headers={"Origin": "https://evil.example"})) == 403
    assert run(handshake_status(ws, headers={**cookie, "Origin": f"http://localhost:{server.port + 1}"})) == 403


async def browse(served: Served, want: list[bytes], timeout: float = 60) -> tuple[bytes, list[str]]:
    """Enter with the printed URL, open the websocket from the page's own origin and wait for `want` to paint;
    meanwhile read the app's process (children of the server) for the token."""
    leaks: list[str] = []
    async with aiohttp.ClientSession() as s:
        async with s.get(served.url) as page:
            assert page.status == 200
        got = b""
        async with s.ws_connect(f"ws://localhost:{served.port}/ws?width=100&height=30",
                                headers={"Origin": served.base}) as ws:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not all(w in got for w in want):
                try:
                    m = await ws.receive(timeout=2)
                except asyncio.TimeoutError:
                    continue
                if m.type == aiohttp.WSMsgType.BINARY:
                    got += m.data
                elif m.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
            leaks = token_in_children(served)
            await ws.send_json(["stdin", "q"])  # quit the app the way a user would
    return got, leaks


def token_in_children(served: Served) -> list[str]:
    """The server's descendant processes whose command line or environment holds the token."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    parents = {}
    for p in proc.iterdir():
        if p.name.isdigit():
            try:
                parents[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    family, grew = {served.proc.pid}, True
    while grew:
        kids = {pid for pid, ppid in parents.items() if ppid in family} - family
        family |= kids
        grew = bool(kids)
    assert len(family) > 1, "the app's process was not found under the server"
    leaks = []
    for pid in family - {served.proc.pid}:
        for what in ("cmdline", "environ"):
            try:
                if served.token.encode() in (proc / str(pid) / what).read_bytes():
                    leaks.append(f"{pid} {what}")
            except OSError:
                pass
    return leaks


def test_with_the_token_and_its_own_origin_the_app_paints(server):
    got, leaks = run(browse(server, [b"Areas", b"Findings", b"NVIDIA driver"]))
    assert b"Areas" in got and b"Findings" in got and b"NVIDIA driver" in got, got[-2000:]
    assert leaks == []  # the app's process never sees the token
    time.sleep(0.5)
    assert server.output.count(server.token) == 1, server.output  # printed once; no request line logs it


def test_a_token_from_the_environment_is_used_and_not_passed_on(tmp_path):
    token = "t" * 30 + "-fixed"
    served = start(tmp_path, env={"TUNEDOC_SERVE_TOKEN": token})
    try:
        assert served.token == token
        got, leaks = run(browse(served, [b"Findings"]))
        assert b"Findings" in got and leaks == []
    finally:
        stop(served)


def test_public_url_is_what_is_printed_and_the_origin_it_allows(tmp_path):
    served = start(tmp_path, "--public-url", "https://box.example/tunedoc")
    try:
        assert served.url.startswith("https://box.example/tunedoc/?token=")
        ws = f"ws://localhost:{served.port}/ws"
        cookie = {"Cookie": f"tunedoc-serve-{served.port}={served.token}"}

        async def go():
            async with aiohttp.ClientSession() as s:  # as the proxy forwards it: the prefix stripped
                async with s.get(f"{served.base}/?token={served.token}", allow_redirects=False) as r:
                    assert r.status == 302 and r.headers["Location"] == "https://box.example/tunedoc/"
                    set_cookie = r.headers["Set-Cookie"]
                async with s.get(f"{served.base}/", headers=cookie) as r:
                    return set_cookie, await r.text()

        set_cookie, html = run(go())
        assert "Path=/tunedoc" in set_cookie and "Secure" in set_cookie and "SameSite=Strict" in set_cookie
        assert "wss://box.example/tunedoc/ws" in html and "https://box.example/tunedoc/static/" in html
        assert run(handshake_status(ws, headers={**cookie, "Origin": "https://box.example"})) == 101
        assert run(handshake_status(ws, headers={**cookie, "Origin": "http://box.example"})) == 403
        assert run(handshake_status(ws, headers={**cookie, "Origin": "https://evil.example"})) == 403
    finally:
        stop(served)


def test_no_token_only_on_loopback_and_only_for_loopback_names(tmp_path):
    refused = subprocess.run([sys.executable, "-m", "tunedoc", "serve", "--no-token", "--host", "0.0.0.0",
                              "--port", str(free_port())], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--no-token needs a loopback --host" in refused.stderr
    served = start(tmp_path, "--no-token", want_url=True)
    try:
        assert "warning: --no-token" in served.output and "token=" not in served.output

        async def status(host: str) -> int:
            async with aiohttp.ClientSession() as s:
                async with s.get(served.base + "/", headers={"Host": host}) as r:
                    return r.status

        assert run(status(f"localhost:{served.port}")) == 200
        assert run(status(f"evil.example:{served.port}")) == 403  # a DNS-rebound name
        assert run(handshake_status(f"ws://localhost:{served.port}/ws",
                                    headers={"Origin": "http://evil.example"})) == 403
    finally:
        stop(served)


@pytest.mark.parametrize("args, env, message", [
    (["--token", "short"], {}, "--token: a token needs at least 22 characters"),
    ([], {"TUNEDOC_SERVE_TOKEN": "short"}, "TUNEDOC_SERVE_TOKEN: a token needs at least 22 characters"),
    (["--port", "70000"], {}, "between 1 and 65535"),
    (["--public-url", "box.example"], {}, "starting with http:// or https://"),
])
def test_serve_refuses_bad_options(args, env, message):
    proc = subprocess.run([sys.executable, "-m", "tunedoc", "serve", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env})
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
