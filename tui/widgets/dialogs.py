"""Reusable modal dialogs: confirm exact commands before running them, and ask for a path."""

from __future__ import annotations

from typing import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class ConfirmCommands(ModalScreen[bool]):
    """Shows the exact commands; dismisses with True only on an explicit Run."""

    DEFAULT_CSS = """
    ConfirmCommands { align: center middle; }
    ConfirmCommands > Vertical { width: 90%; max-width: 110; height: auto; max-height: 90%;
                                  border: thick $warning; background: $panel; padding: 0 1; }
    ConfirmCommands .dialog-title { text-style: bold; margin-bottom: 1; }
    ConfirmCommands .dialog-commands { background: $surface; padding: 0 1; }
    ConfirmCommands .dialog-note { color: $text-muted; margin-top: 1; }
    ConfirmCommands Horizontal { height: auto; margin-top: 1; align-horizontal: right; }
    ConfirmCommands Button { margin-left: 2; }
    """
    # Run needs its own key (or Tab to the button): Enter on the focused Cancel button never runs anything
    BINDINGS = [Binding("escape,n", "cancel", "Cancel"), Binding("y", "run", "Run")]

    def __init__(self, title: str, commands: list[str], note: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.commands = commands
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, classes="dialog-title", markup=False)
            yield Static(Text("\n".join(f"$ {c}" for c in self.commands)), classes="dialog-commands")
            if self.note:
                yield Static(self.note, classes="dialog-note", markup=False)
            with Horizontal():
                yield Button("Cancel (Esc)", id="cancel", compact=True)
                yield Button("Run (y)", id="run", variant="warning", compact=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "run")

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_run(self) -> None:
        self.dismiss(True)


class PathPrompt(ModalScreen[str | None]):
    """Asks for a path; `validate(value)` returns an error to show, or None to accept."""

    DEFAULT_CSS = """
    PathPrompt { align: center middle; }
    PathPrompt > Vertical { width: 90%; max-width: 100; height: auto; border: thick $accent;
                             background: $panel; padding: 0 1; }
    PathPrompt .dialog-title { text-style: bold; }
    PathPrompt .dialog-help { color: $text-muted; }
    PathPrompt .dialog-error { color: $error; height: auto; }
    PathPrompt Input { margin: 1 0 0 0; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, help: str = "", value: str = "",
                 validate: Callable[[str], str | None] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.help = help
        self.value = value
        self.validate = validate

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, classes="dialog-title", markup=False)
            if self.help:
                yield Static(self.help, classes="dialog-help", markup=False)
            yield Input(value=self.value, id="path")
            yield Static("", classes="dialog-error", id="error", markup=False)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value.strip()
        error = self.validate(value) if self.validate else (None if value else "give a path")
        if error:
            self.query_one("#error", Static).update(error)
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PickFile(ModalScreen["str | None"]):
    """Browse the file system and pick a file (a data set): Enter on a file picks it, Esc cancels. Only names that
    end with one of `suffixes` (and folders) are shown; a folder can be picked with `s` (LLaMA-Factory data dirs)."""

    DEFAULT_CSS = """
    PickFile { align: center middle; }
    PickFile > Vertical { width: 90%; max-width: 100; height: 85%; border: thick $primary; background: $panel;
                          padding: 0 1; }
    PickFile .dialog-title { text-style: bold; }
    PickFile .dialog-note { color: $text-muted; }
    PickFile DirectoryTree { height: 1fr; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("s", "pick_dir", "Pick folder"),
                Binding("backspace", "up", "Parent folder")]

    def __init__(self, root: str, suffixes: tuple[str, ...] = (".json", ".jsonl"), title: str = "Pick a file") -> None:
        super().__init__()
        self.root, self.suffixes, self.title_text = root, suffixes, title

    def compose(self) -> ComposeResult:
        from pathlib import Path

        from textual.widgets import DirectoryTree

        suffixes = self.suffixes

        class Filtered(DirectoryTree):
            def filter_paths(self, paths):
                return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or p.suffix in suffixes)]

        with Vertical():
            yield Static(self.title_text, classes="dialog-title")
            yield Static(f"{', '.join(suffixes)} files · Enter picks · s picks the highlighted folder · "
                         "Backspace goes up · Esc cancels", classes="dialog-note")
            yield Filtered(str(Path(self.root).expanduser().resolve()), id="tree")

    def on_mount(self) -> None:
        self.query_one("#tree").focus()

    def on_directory_tree_file_selected(self, event) -> None:
        event.stop()
        self.dismiss(str(event.path))

    def action_pick_dir(self) -> None:
        node = self.query_one("#tree").cursor_node
        if node is not None and node.data is not None and node.data.path.is_dir():
            self.dismiss(str(node.data.path))

    def action_up(self) -> None:
        tree = self.query_one("#tree")
        tree.path = tree.path.parent

    def action_cancel(self) -> None:
        self.dismiss(None)
