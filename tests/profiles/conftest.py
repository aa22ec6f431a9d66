import pytest
from huggingface_hub import constants as hf_constants  # imported now, while HF_HUB_OFFLINE is unset



@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    # corrections read $TUNEDOC_HOME: never the user's real records
    monkeypatch.setenv("TUNEDOC_HOME", str(tmp_path / "tunedoc-home"))
    # no test may reach the Hub. huggingface_hub reads HF_HUB_OFFLINE once, at import: set the constant too, so
    # that it is restored afterwards and does not leak into later tests of the same worker (the fake-Hub tests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
