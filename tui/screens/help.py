"""`?`: the keys of the screen you came from and of the app, read from the live bindings so it never drifts."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

INTRO = ("tunedoc: set up a GPU box for LLM fine-tuning. Every action is also in the command palette (Ctrl+P), "
         "and every screen has a headless twin: `tunedoc doctor`, `tunedoc doctor --json`.")


def _key(binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    return {"question_mark": "?", "escape": "Esc", "enter": "Enter", "ctrl+p": "Ctrl+P",
            "shift+r": "R"}.get(binding.key, binding.key)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = Path(__file__).with_name("help.tcss")
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.target = screen

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(INTRO, id="help-intro", markup=False)
            with VerticalScroll():
                yield Static(self._table(), id="help-keys")
            yield Static("Esc closes", id="help-foot")

    def _table(self) -> Table:
        table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(ratio=1)
        sections = [(getattr(self.target, "HELP_TITLE", self.target.__class__.__name__), self.target),
                    ("Everywhere", self.app)]
        for title, node in sections:
            table.add_row(Text(title, style="bold underline"), "")
            rows: dict[str, tuple[list[str], str]] = {}
            for _key_name, binding in node._bindings:  # class bindings and those bound at run time
                if not binding.description:
                    continue
                # one row per action, or per tooltip: bindings that share one are one key (the Profile screen's S)
                keys, text = rows.setdefault(binding.tooltip or binding.action,
                                             ([], binding.tooltip or binding.description))
                if _key(binding) not in keys:
                    keys.append(_key(binding))
            for keys, text in rows.values():
                table.add_row(" / ".join(keys), text)
            table.add_row("", "")
        return table
