"""The eval view: one `tunedoc eval` result of a run, example by example, side by side (prompt, reference, the base
model's answer, the tuned model's answer), searchable. Opened from the Runs screen (`v`); reads
RUN/eval/<time>/examples.jsonl and scores.json (trainer/compare.py), never torch."""

from __future__ import annotations

from pathlib import Path

from rich.cells import cell_len
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from tunedoc.trainer.compare import read_eval


def _cut(text: str, width: int = 60) -> str:
    """One line of at most `width` terminal cells (Chinese characters take two)."""
    text = "".join(c if c.isprintable() else " " for c in " ".join(str(text or "").split()))
    if cell_len(text) <= width:
        return text
    out = ""
    for c in text:
        if cell_len(out + c) > width - 1:
            break
        out += c
    return out + "…"


def _num(x) -> str:
    return f"{x:.1f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "-"


def summary_line(scores: dict) -> str:
    t, b = scores.get("tuned") or {}, scores.get("base") or {}
    parts = []
    for key, label in (("bleu4", "BLEU-4"), ("rougeL", "ROUGE-L")):
        s = f"{label} {_num(t.get(key))}"
        if b:
            s += f" (base {_num(b.get(key))})"
        parts.append(s)
    parts.append(f"{scores.get('n')} examples, step {scores.get('step')}")
    tok = scores.get("tokenization") or {}
    words = ", ".join(f"{n} {'jieba (Chinese)' if k == 'jieba' else k}" for k, n in tok.items())
    return "  ".join(parts) + f"\n{scores.get('run_id')} {scores.get('time')}; tokenized: {words or '-'}"


class EvalView(Screen):
    CSS_PATH = Path(__file__).with_name("eval_view.tcss")
    HELP_TITLE = "Eval examples"
    BINDINGS = [
        Binding("escape", "close", "Back", tooltip="Back to the Runs screen"),
        Binding("slash", "search", "Search", key_display="/", tooltip="Filter examples by text"),
    ]

    def __init__(self, eval_dir: Path) -> None:
        super().__init__()
        self.eval_dir = Path(eval_dir)
        self.scores: dict = {}
        self.rows: list[dict] = []
        self.shown: list[dict] = []

    def compose(self) -> ComposeResult:
        yield Static("loading...", id="eval-title", markup=False)
        yield Input(placeholder="search prompts, references and answers (/)", id="eval-search")
        table = DataTable(id="eval-table", cursor_type="row", zebra_stripes=True)
        table.border_title = "examples"
        yield table
        with VerticalScroll(id="eval-detail") as detail:
            detail.border_title = "example"
            yield Static("", id="eval-text")
        yield Footer()

    def on_mount(self) -> None:
        t = self.query_one("#eval-table", DataTable)
        for label in ("#", "prompt", "reference", "base", "tuned", "R-L"):
            t.add_column(label, key=label)
        t.focus()
        self._load()

    @work(thread=True, exclusive=True)
    def _load(self) -> None:
        scores, rows = read_eval(self.eval_dir)
        self.app.call_from_thread(self._loaded, scores, rows)

    def _loaded(self, scores: dict, rows: list[dict]) -> None:
        self.scores, self.rows = scores, rows
        self.query_one("#eval-title", Static).update(summary_line(scores) if scores else
                                                     f"no eval results in {self.eval_dir}")
        self._fill("")

    def _fill(self, query: str) -> None:
        q = query.strip().lower()
        self.shown = [r for r in self.rows if not q or any(
            q in str(r.get(k) or "").lower() for k in ("prompt", "reference", "base", "tuned"))]
        t = self.query_one("#eval-table", DataTable)
        t.clear()
        for r in self.shown:
            t.add_row(str(r.get("i", "")), _cut(r.get("prompt"), 14), _cut(r.get("reference"), 15),
                      _cut(r.get("base", "-"), 12), _cut(r.get("tuned"), 15),
                      _num((r.get("tuned_scores") or {}).get("rougeL")))
        t.border_subtitle = f"{len(self.shown)} of {len(self.rows)}" + (f" matching {query!r}" if q else "")
        self._detail(0 if self.shown else None)

    def _detail(self, index: int | None) -> None:
        text = Text()
        if index is not None and index < len(self.shown):
            r = self.shown[index]
            ts, bs = r.get("tuned_scores") or {}, r.get("base_scores") or {}
            for label, key, style, sc in (("prompt", "prompt", "bold", None), ("reference", "reference", "green", None),
                                          ("base", "base", "yellow", bs), ("tuned", "tuned", "cyan", ts)):
                if key not in r:
                    continue
                head = label + (f"  (BLEU-4 {_num(sc.get('bleu4'))}, ROUGE-L {_num(sc.get('rougeL'))})" if sc else "")
                text.append(head + "\n", style=style)
                text.append("".join(c if c.isprintable() or c == "\n" else "\ufffd" for c in str(r.get(key) or ""))
                            + "\n\n")
        else:
            text.append("no example matches" if self.rows else "no examples")
        self.query_one("#eval-text", Static).update(text)

    @on(DataTable.RowHighlighted, "#eval-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail(event.cursor_row)

    @on(Input.Changed, "#eval-search")
    def _search(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted, "#eval-search")
    def _search_done(self) -> None:
        self.query_one("#eval-table", DataTable).focus()

    def action_search(self) -> None:
        self.query_one("#eval-search", Input).focus()

    def action_close(self) -> None:
        if self.query_one("#eval-search", Input).has_focus and self.query_one("#eval-search", Input).value:
            self.query_one("#eval-search", Input).value = ""
            return
        self.app.pop_screen()
