"""`tunedoc serve` in a real browser: the system's headless Chromium (Debian's `chromium`) driven by Playwright with
`executable_path` (Playwright never downloads a browser here). The terminal is drawn on a canvas, so what the app
shows is read from the websocket frames the page receives; the screenshots are kept in the test's tmp_path (set
TUNEDOC_SERVE_SHOTS=DIR to keep them elsewhere). Skips where Playwright or Chromium is missing."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.tui.serve_fixtures import start, stop

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = os.environ.get("TUNEDOC_CHROMIUM") or next(
    (path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no system chromium (apt-get install chromium)")


class Frames:
    """Everything the page's websocket received, as one byte string."""

    def __init__(self) -> None:
        self.data = b""

    def on_socket(self, ws) -> None:
        ws.on("framereceived", self.add)

    def add(self, payload) -> None:
        self.data += payload if isinstance(payload, bytes) else payload.encode()

    def wait_for(self, page, *texts: bytes, since: int = 0, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(t in self.data[since:] for t in texts):
                return True
            page.wait_for_timeout(200)  # lets Playwright deliver the frame events
        return False


def test_the_printed_url_shows_the_app_in_chromium_and_takes_keys(tmp_path):
    shots = Path(os.environ.get("TUNEDOC_SERVE_SHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    served = start(tmp_path)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1000, "height": 700})
            page = context.new_page()

            bare = page.goto(served.base + "/")
            assert bare.status == 401
            assert "token needed" in page.inner_text("body") and "printed when it started" in page.inner_text("body")
            page.screenshot(path=shots / "serve-refused.png")

            frames = Frames()
            page.on("websocket", frames.on_socket)
            page.goto(served.url)
            assert page.url == served.base + "/"  # the token is out of the address bar
            cookie, = [c for c in context.cookies() if c["name"] == f"tunedoc-serve-{served.port}"]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert frames.wait_for(page, b"Areas", b"Findings", b"NVIDIA driver"), frames.data[-2000:]
            page.wait_for_timeout(500)  # the frames arrived; let the canvas draw them
            page.screenshot(path=shots / "serve-doctor.png")

            page.mouse.click(500, 350)  # focus the terminal, as a person would before typing
            mark = len(frames.data)
            page.keyboard.press("2")
            # the Models screen's search box
            assert frames.wait_for(page, b"press / and type a model name", since=mark), frames.data[mark:][-2000:]
            page.wait_for_timeout(500)
            page.screenshot(path=shots / "serve-models.png")
            browser.close()
    finally:
        stop(served)
