"""Real model configs used as fixtures (a module of its own: `conftest` names clash between test folders)."""

import json
from pathlib import Path

CONFIGS = Path(__file__).parent / "configs"


def load(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())
