"""The doctor's tests never contact the real Hugging Face Hub or ModelScope: the network probe's endpoints point at
a name that never resolves, and doctor subprocesses inherit a proxy on a closed local port, so whatever they ask
fails at once on this machine. tests/doctor/test_network.py points them at stand-in servers instead."""

from __future__ import annotations

import socket

import pytest

NOWHERE = "http://tunedoc-unreachable.invalid"


@pytest.fixture(autouse=True)
def no_real_model_sources(monkeypatch):
    from tunedoc.doctor.probes import network

    monkeypatch.setattr(network, "HUB", NOWHERE)
    monkeypatch.setenv("MODELSCOPE_DOMAIN", NOWHERE)
    monkeypatch.delenv("MODELSCOPE_ENDPOINT", raising=False)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(var, dead)
    for var in ("https_proxy", "http_proxy", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
