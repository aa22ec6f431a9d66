"""`tunedoc serve`: the app in a browser through textual-serve. A browser is a page plus a websocket that carries
the terminal's bytes; this test is that browser: it loads the page, opens the websocket and waits for the Doctor
screen to paint."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

import aiohttp
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = {**os.environ, "TUNEDOC_RUNS_DIR": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "tunedoc", "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("localhost", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"tunedoc serve exited: {proc.stdout.read().decode(errors='replace')}")
            time.sleep(0.2)
    yield f"http://localhost:{port}"
    os.killpg(proc.pid, 9)
    proc.wait(timeout=10)


async def browse(url: str, want: list[bytes], timeout: float = 60) -> tuple[str, bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as page:
            html = await page.text()
        got = b""
        async with s.ws_connect(f"{url}/ws?width=100&height=30") as ws:
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
            await ws.send_json(["stdin", "q"])  # quit the app the way a user would
    return html, got


def test_serve_shows_the_doctor_screen_in_a_browser(server):
    html, got = asyncio.run(browse(server, [b"Areas", b"Findings", b"NVIDIA driver"]))
    assert "textual.js" in html and "/ws" in html  # the page that runs the terminal in the browser
    assert "googleapis" not in html  # nothing from a host that is blocked or slow behind a firewall
    assert b"Areas" in got and b"Findings" in got and b"NVIDIA driver" in got, got[-2000:]


def test_serve_refuses_a_bad_port():
    proc = subprocess.run([sys.executable, "-m", "tunedoc", "serve", "--port", "70000"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "between 1 and 65535" in proc.stderr
