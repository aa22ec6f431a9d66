"""A real `tunedoc serve` on a free port, started as a user would, with the URL read from what it prints."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TOKEN_RE = re.compile(r"(https?://\S+/\?token=(\S+))")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    proc: subprocess.Popen
    port: int
    lines: list[str] = field(default_factory=list)
    url: str = ""  # the printed URL, with the token
    token: str = ""

    @property
    def base(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def output(self) -> str:
        return "".join(self.lines)


def start(tmp_path: Path, *args: str, env: dict | None = None, want_url: bool = True) -> Served:
    port = free_port()
    full_env = {**os.environ, "TUNEDOC_RUNS_DIR": str(tmp_path / "runs"), "HF_HUB_OFFLINE": "1", **(env or {})}
    if "TUNEDOC_SERVE_TOKEN" not in (env or {}):
        full_env.pop("TUNEDOC_SERVE_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "tunedoc", "serve", "--port", str(port), *args], cwd=tmp_path,
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    served = Served(proc, port)
    threading.Thread(target=lambda: served.lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("localhost", port), timeout=1).close()
            if not want_url or "Ctrl+C stops" in served.output:
                break
        except OSError:
            if proc.poll() is not None:
                time.sleep(0.2)
                pytest.fail(f"tunedoc serve exited: {served.output}")
        time.sleep(0.2)
    else:
        pytest.fail(f"tunedoc serve did not start: {served.output}")
    found = TOKEN_RE.search(served.output)
    if found:
        served.url, served.token = found.group(1), found.group(2)
    return served


def stop(served: Served) -> None:
    os.killpg(served.proc.pid, 9)
    served.proc.wait(timeout=10)
