"""The TUI process never imports torch, transformers or bitsandbytes, even after a full real doctor run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import asyncio, json, sys
from tunedoc.tui.app import make_app

async def main():
    app = make_app()   # the real doctor backend
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        for _ in range(1200):
            await pilot.pause(0.1)
            if screen.model.runs and not screen.model.running():
                break
        await pilot.pause(0.2)
        areas = {v.area: v.state for v in screen.model.area_views(0.0)}
        probes = {n: r.status.ok for n, r in screen.model.runs.items()}
        summary = screen.model.summary(screen.facts)[0]
    heavy = [m for m in ("torch", "transformers", "bitsandbytes", "peft", "accelerate") if m in sys.modules]
    print(json.dumps({"heavy": heavy, "areas": areas, "probes": probes, "summary": summary,
                      "textual": "textual" in sys.modules}))

asyncio.run(main())
"""


def test_full_doctor_in_the_app_imports_no_heavy_library():
    # the network probe runs too (httpx in a thread), through a proxy on a closed port: nothing leaves this machine
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "hf_hub_offline")}
    env.update(HTTPS_PROXY=dead, HTTP_PROXY=dead, ALL_PROXY=dead)
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=180,
                         env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["textual"]
    assert result["heavy"] == []
    # the doctor really ran: every area settled (none still pending) and the torch child answered
    assert "pending" not in result["areas"].values()
    assert "torch" in result["probes"] and result["probes"]["network"] is True
    assert not result["summary"].startswith("Checking")


def test_backends_and_model_import_no_textual():
    code = ("import sys, tui.backends, tui.doctor_model; "
            "print('textual' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stderr
