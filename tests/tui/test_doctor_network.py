"""The Doctor screen's Hugging Face area with the real network probe and rules, against stand-in servers: a Hub that
does not answer shows as a warning with its ways out, and applying the mirror fix re-checks the area, which then
says the mirror answers. (The other Doctor tests script their probes and never touch the network.)"""

from __future__ import annotations

import sys
from pathlib import Path

from tunedoc.doctor.probes import network
from tunedoc.doctor.rules import system as system_rules
from tunedoc.tui.app import make_app
from tunedoc.tui.backends import RealDoctorBackend
from tunedoc.tui.widgets.dialogs import ConfirmCommands

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from fakehub import FakeHub, FakeRepo, tiny_llama_files  # noqa: E402
from fakemodelscope import FakeModelScope  # noqa: E402
from unreachable import failing  # noqa: E402

from tests.tui.conftest import doctor, settle  # noqa: E402


class HfOnlyBackend(RealDoctorBackend):
    """The real doctor, limited to the probes behind the Hugging Face area (no torch child, no GPU probes)."""

    def probe_names(self) -> list[str]:
        return ["env", "hf", "network"]


def hf_row(app):
    return next(v for v in doctor(app).model.area_views(0.0) if v.area == "hf")


async def test_an_unreachable_hub_shows_in_the_hf_area_and_the_mirror_fix_rechecks_it(monkeypatch, tmp_path):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
                "HF_HUB_OFFLINE", "MODELSCOPE_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", "https://huggingface.co")  # restored after the fix changes it
    monkeypatch.setattr(network, "TIMEOUT_S", 1.5)
    with failing("timeout") as hub, FakeModelScope({}) as ms, \
            FakeHub([FakeRepo("org/tiny", tiny_llama_files(1000))]) as mirror:
        monkeypatch.setattr(network, "HUB", hub)
        monkeypatch.setattr(system_rules, "MIRROR", mirror.url)  # the fix suggests our stand-in, not hf-mirror.com
        monkeypatch.setenv("MODELSCOPE_DOMAIN", ms.url)
        app = make_app(doctor_backend=HfOnlyBackend(), clock=lambda: 1000.0)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot, timeout=10)
            row = hf_row(app)
            assert row.state == "warning", row
            assert row.line == "huggingface.co does not answer (timed out); ModelScope does", row
            finding = doctor(app).current_finding()
            assert finding.id == "hf-unreachable"
            await pilot.press("enter")
            await pilot.pause(0.1)
            text = " ".join(str(w.render()) for w in doctor(app).query_one("#detail").query("Static"))
            assert f"{hub} (Hub): does not answer" in text and f"{ms.url} (ModelScope): answers" in text
            assert "--source modelscope" in text and "--model" in text
            await pilot.press("a")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmCommands)
            assert app.screen.commands == [f"export HF_ENDPOINT={mirror.url}"]
            await pilot.press("y")
            await settle(pilot, timeout=10)
            await settle(pilot, timeout=10)
            row = hf_row(app)
            assert row.state == "info" and row.line.startswith(f"huggingface.co does not answer; the mirror "
                                                                  f"{mirror.url} does"), row
            ids = [f.id for f in doctor(app).model.findings]
            assert "hf-unreachable" not in ids and "hf-mirror-only" in ids
