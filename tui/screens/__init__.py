"""The app's screens. Adding one is one module (a Screen subclass with its own CSS_PATH .tcss) and one line here.

Each screen is a mode of the app (`App.switch_mode`), built on first use, so screens keep their state while you
switch between them, and an unused screen's modules are never imported.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from textual.screen import Screen


@dataclass(frozen=True)
class ScreenSpec:
    name: str  # the mode name, also used by `tunedoc` to pick the start screen
    title: str  # shown in the footer and the help
    key: str  # the key that switches to it, app-wide
    target: str  # "module:Class"; the class is constructed with no arguments and reads backends from the app

    def load(self) -> type[Screen]:
        module, _, cls = self.target.partition(":")
        return getattr(importlib.import_module(module), cls)


SCREENS: list[ScreenSpec] = [
    ScreenSpec("doctor", "Doctor", "1", "tunedoc.tui.screens.doctor:DoctorScreen"),
    ScreenSpec("models", "Models", "2", "tunedoc.tui.screens.models:ModelsScreen"),
    ScreenSpec("profile", "Profile", "3", "tunedoc.tui.screens.profile:ProfileScreen"),
    ScreenSpec("train", "Train", "4", "tunedoc.tui.screens.train:TrainScreen"),
    ScreenSpec("runs", "Runs", "5", "tunedoc.tui.screens.runs:RunsScreen"),
]
