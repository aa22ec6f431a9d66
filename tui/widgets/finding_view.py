"""A finding in full: its explanation, the evidence it rests on, and its fixes, each with copy / apply."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Static

from tunedoc.doctor.findings import Finding, Fix

SEVERITY_STYLE = {"error": ("✗", "bold red"), "warning": ("!", "bold yellow"), "info": ("i", "bold cyan"),
                  "ok": ("✓", "bold green")}


def finding_label(finding: Finding) -> Text:
    icon, style = SEVERITY_STYLE.get(finding.severity, ("·", ""))
    text = Text(no_wrap=True, overflow="ellipsis", end="")
    text.append(f"{icon} ", style=style)
    text.append(finding.title)
    return text


class FixCard(Vertical, can_focus=True):
    """One fix. Copy and Apply are requested from the parent (messages up); the card runs nothing itself."""

    DEFAULT_CSS = """
    FixCard { height: auto; padding: 0 1; margin: 1 0 0 0; border-left: tall $panel; }
    FixCard:focus-within, FixCard:focus { border-left: tall $accent; background: $boost; }
    FixCard .fix-title { text-style: bold; }
    FixCard .fix-commands { color: $text; background: $surface; padding: 0 1; }
    FixCard .fix-note { color: $text-muted; }
    FixCard Horizontal { height: auto; }
    FixCard Button { margin-right: 1; }
    """

    class CopyRequested(Message):
        def __init__(self, fix: Fix) -> None:
            super().__init__()
            self.fix = fix

    class ApplyRequested(Message):
        def __init__(self, fix: Fix) -> None:
            super().__init__()
            self.fix = fix

    def __init__(self, fix: Fix, number: int) -> None:
        super().__init__()
        self.fix = fix
        self.number = number

    def compose(self) -> ComposeResult:
        yield Static(f"{self.number}. {self.fix.title}", classes="fix-title", markup=False)
        if self.fix.commands:
            yield Static(Text("\n".join(f"$ {c}" for c in self.fix.commands)), classes="fix-commands")
        notes = []
        if self.fix.url:
            notes.append(self.fix.url)
        if self.fix.commands and not self.fix.applicable:
            notes.append("changes the system: shown here, run it yourself")
        if notes:
            yield Static("\n".join(notes), classes="fix-note", markup=False)
        if self.fix.commands:
            with Horizontal():
                yield Button("Copy (y)", id="copy", compact=True)
                if self.fix.applicable:
                    yield Button("Apply… (a)", id="apply", variant="warning", compact=True)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "copy":
            self.post_message(self.CopyRequested(self.fix))
        elif event.button.id == "apply":
            self.post_message(self.ApplyRequested(self.fix))


class FindingView(VerticalScroll):
    """Shows one finding; the parent calls `show(finding)`."""

    DEFAULT_CSS = """
    FindingView { height: 1fr; padding: 0 1; }
    FindingView .finding-title { text-style: bold; }
    FindingView .finding-detail { margin-top: 1; }
    FindingView .finding-evidence { margin-top: 1; color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.finding: Finding | None = None

    async def show(self, finding: Finding | None) -> None:
        self.finding = finding
        await self.remove_children()
        if finding is None:
            await self.mount(Static("Select a finding to see why, and how to fix it.", classes="finding-detail"))
            return
        title = finding_label(finding)
        title.no_wrap = False
        title.append(f"  [{finding.id}]", style="dim")
        widgets = [Static(title, classes="finding-title")]
        if finding.detail:
            widgets.append(Static(finding.detail, classes="finding-detail", markup=False))
        if finding.evidence:
            widgets.append(Static("Evidence:\n" + "\n".join(f"  • {e}" for e in finding.evidence),
                                  classes="finding-evidence", markup=False))
        widgets.extend(FixCard(fix, i) for i, fix in enumerate(finding.fixes, 1))
        await self.mount_all(widgets)
        self.scroll_home(animate=False)

    def current_fix(self, applicable: bool = False) -> Fix | None:
        """The fix whose card has focus, else the first one (the first applicable one when asked)."""
        node = self.app.focused
        while node is not None and node is not self and not isinstance(node, FixCard):
            node = node.parent
        if isinstance(node, FixCard) and node.fix.commands and (node.fix.applicable or not applicable):
            return node.fix
        fixes = self.finding.fixes if self.finding else []
        for fix in fixes:
            if fix.commands and (fix.applicable or not applicable):
                return fix
        return None
