"""One line of the doctor's area list: a status icon (or spinner), the area's name and its one-line finding."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

STATES = ("pending", "ok", "warning", "error", "info", "failed", "none", "unknown")


class AreaRow(Static):
    """Set `state`, `icon` and `line` from the parent; the CSS class `-<state>` colours the icon."""

    DEFAULT_CSS = """
    AreaRow { height: 1; width: 1fr; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    AreaRow.-pending { color: $text-muted; }
    AreaRow.-none, AreaRow.-unknown { color: $text-muted; }
    """

    state: reactive[str] = reactive("pending")
    icon: reactive[str] = reactive("⠋")
    line: reactive[str] = reactive("checking…")

    COLORS = {"ok": "green", "warning": "yellow", "error": "red", "info": "cyan", "failed": "magenta",
              "pending": "cyan"}

    def __init__(self, area: str, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.area = area
        self.title = title

    def watch_state(self, old: str, new: str) -> None:
        self.remove_class(f"-{old}")
        self.add_class(f"-{new}")

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis", end="")
        color = self.COLORS.get(self.state)
        text.append(f"{self.icon} ", style=f"bold {color}" if color else "")
        text.append(f"{self.title:<14} ", style="bold")
        text.append(self.line)
        return text
