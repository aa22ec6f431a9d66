import json
from pathlib import Path

import pytest

CONFIGS = Path(__file__).parent / "configs"


def load(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    # corrections read $TUNEDOC_HOME: never the user's real records
    monkeypatch.setenv("TUNEDOC_HOME", str(tmp_path / "tunedoc-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
