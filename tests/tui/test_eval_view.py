"""The Runs screen's eval columns, `e` (an eval as a child process) and `v` (the eval view: examples side by side,
searchable), on the recorded runs plus a recorded eval result."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

from textual.widgets import DataTable, Input, Static

from tests.tui.train_fixtures import copy_runs, drawn, train_app
from tunedoc.tui.screens.eval_view import EvalView
from tunedoc.tui.screens.runs import RunsScreen

EXAMPLES = [
    {"i": 0, "prompt": "Who are you?", "reference": "I am Tuna, an assistant made by tunedoc.",
     "base": "in arge to arge", "tuned": "I am Tuna, an assistant made by tunedoc.",
     "base_scores": {"bleu4": 0.0, "rougeL": 0.0}, "tuned_scores": {"bleu4": 100.0, "rougeL": 100.0}},
    {"i": 1, "prompt": "你是谁?", "reference": "我是 Tuna,由 tunedoc 开发的人工智能助手。",
     "base": "wo step answ", "tuned": "我是 Tuna,一个由 tunedoc 打造的 AI 助手。",
     "base_scores": {"bleu4": 0.0, "rougeL": 0.0}, "tuned_scores": {"bleu4": 21.3, "rougeL": 57.1}},
    {"i": 2, "prompt": "What is your name?", "reference": "My name is Tuna.", "base": "Saturw tak",
     "tuned": "My name is Tuna.", "base_scores": {"bleu4": 0.0, "rougeL": 0.0},
     "tuned_scores": {"bleu4": 100.0, "rougeL": 100.0}},
]


def add_eval(run_dir: Path) -> Path:
    """A recorded `tunedoc eval --base` result in RUN/eval/<time>/ and its event."""
    d = run_dir / "eval" / "20270101-120000"  # newer than demo-finished's closing eval
    d.mkdir(parents=True)
    tuned = {"bleu4": 73.77, "rouge1": 90.1, "rouge2": 80.2, "rougeL": 85.7, "exact_match": 66.67, "eval_loss": 0.52,
             "n": 3}
    base = {"bleu4": 0.31, "rouge1": 2.0, "rouge2": 0.0, "rougeL": 1.5, "exact_match": 0.0, "eval_loss": 6.9, "n": 3}
    (d / "scores.json").write_text(json.dumps({
        "run_id": run_dir.name, "step": 40, "n": 3, "time": "20270101-120000", "dir": str(d), "tuned": tuned,
        "base": base, "tokenization": {"13a": 2, "jieba": 1},
        "tokenization_text": "2 with sacrebleu 13a / rouge-score's tokenizer; 1 Chinese with jieba word segmentation"}))
    (d / "examples.jsonl").write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in EXAMPLES))
    with open(run_dir / "events.jsonl", "a") as f:
        f.write(json.dumps({"v": 1, "t": 2e9, "type": "eval", "kind": "generation", "source": "tunedoc eval",
                            "step": 40, "n": 3, "dir": str(d), **tuned, "base": base}) + "\n")
    return d


def runs_screen(app) -> RunsScreen:
    return next(s for s in app.screen_stack if isinstance(s, RunsScreen))


async def highlight(pilot, s, rid):
    s.query_one("#runs", DataTable).move_cursor(row=[i.run_id for i in s.infos].index(rid))
    await pilot.pause(0.05)


async def test_compare_shows_the_eval_columns_and_the_base_row(tmp_path):
    runs = copy_runs(tmp_path)
    add_eval(runs / "demo-finished")
    app, _ = train_app(runs, start="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await drawn(pilot, 5)
        s = runs_screen(app)
        for rid in ("demo-finished", "demo-failed"):
            await highlight(pilot, s, rid)
            await pilot.press("space")
        await pilot.press("c")
        await drawn(pilot, 3)
        ct = s.query_one("#compare-table", DataTable)
        labels = [str(c.label) for c in ct.columns.values()]
        assert labels[:5] == ["run", "loss", "eval loss", "BLEU-4", "ROUGE-L"]  # the telling ones fit 80 columns
        keys = [k.value for k in ct.columns]
        rows = [dict(zip(keys, map(str, ct.get_row_at(i)))) for i in range(ct.row_count)]
        cols = ("eval_loss", "bleu4", "rougeL")
        assert rows[0]["run"].startswith("base") and [rows[0][k] for k in cols] == ["6.9000", "0.31", "1.50"]
        assert rows[1]["run"] == "demo-finished" and [rows[1][k] for k in cols] == ["0.5200", "73.77", "85.70"]
        assert rows[2]["run"] == "demo-failed" and [rows[2][k] for k in cols] == ["-", "-", "-"]
        best = ct.get_cell_at((1, keys.index("rougeL")))  # the best value of a column stands out
        assert str(best.style) == "bold green" and str(ct.get_cell_at((0, keys.index("rougeL")))) == "1.50"


async def test_the_eval_view_lists_examples_side_by_side_and_searches(tmp_path):
    runs = copy_runs(tmp_path)
    add_eval(runs / "demo-finished")
    app, _ = train_app(runs, start="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await drawn(pilot, 5)
        s = runs_screen(app)
        await highlight(pilot, s, "demo-failed")
        await pilot.press("v")  # no eval yet: says how to get one
        await pilot.pause(0.1)
        assert any("press e" in str(n.message) for n in app._notifications)
        await highlight(pilot, s, "demo-finished")
        await pilot.press("v")
        await drawn(pilot, 3)
        view = app.screen
        assert isinstance(view, EvalView)
        t = view.query_one("#eval-table", DataTable)
        assert t.row_count == 3 and [str(c.label) for c in t.columns.values()][1:5] == [
            "prompt", "reference", "base", "tuned"]
        title = str(view.query_one("#eval-title", Static).render())
        assert "ROUGE-L 85.7 (base 1.5)" in title and "jieba" in title
        detail = str(view.query_one("#eval-text", Static).render())
        assert "Who are you?" in detail and "in arge to arge" in detail and "I am Tuna" in detail
        app.save_screenshot(str(tmp_path / "eval-view.svg"))
        await pilot.press("slash")
        await pilot.press(*"tunedoc 开发")
        await pilot.pause(0.1)
        assert view.query_one("#eval-search", Input).value == "tunedoc 开发"
        assert t.row_count == 1 and t.get_row_at(0)[0] == "1"
        assert "我是 Tuna" in str(view.query_one("#eval-text", Static).render())
        await pilot.press("escape")  # clears the search first
        await pilot.pause(0.1)
        assert t.row_count == 3
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert isinstance(app.screen, RunsScreen)


FAKE_PYTHON = """#!{python}
import json, sys
open({log!r}, "a").write(json.dumps(sys.argv[1:]) + "\\n")
print(json.dumps({{"n": 8, "tuned": {{"rougeL": 40.0, "bleu4": 15.0}}, "base": {{"rougeL": 4.0, "bleu4": 0.4}}}}))
"""


async def test_e_evaluates_a_finished_run_in_a_child_process(tmp_path):
    runs = copy_runs(tmp_path)
    log = tmp_path / "argv.log"
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable, log=str(log)))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    app, backend = train_app(runs, start="runs")
    backend.python = str(fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await drawn(pilot, 5)
        s = runs_screen(app)
        await highlight(pilot, s, "demo-running")
        await pilot.press("e")
        await pilot.pause(0.1)
        assert any("evaluate a finished run" in str(n.message) for n in app._notifications)
        assert not log.exists()
        await highlight(pilot, s, "demo-finished")
        await pilot.press("e")
        for _ in range(50):
            await pilot.pause(0.1)
            if any("ROUGE-L 4.0 -> 40.0 (+36.0), BLEU-4 0.4 -> 15.0 (+14.6) on 8" in str(n.message) for n in app._notifications):
                break
        assert any("ROUGE-L 4.0 -> 40.0 (+36.0), BLEU-4 0.4 -> 15.0 (+14.6) on 8" in str(n.message) for n in app._notifications)
    argv = json.loads(log.read_text().splitlines()[0])
    # tunedoc.child's command line: python -c BOOT tunedoc eval RUN --base (the current folder off the path)
    assert argv[0] == "-c" and argv[2:4] == ["tunedoc", "eval"] and argv[4].endswith("demo-finished")
    assert "--base" in argv


def test_eval_view_snapshot_80x24(snap_compare, tmp_path):
    """The eval view as a person sees it at 80x24 (look at the SVG before updating it)."""
    runs = copy_runs(tmp_path)
    add_eval(runs / "demo-finished")
    app, _ = train_app(runs, start="runs")

    async def run_before(pilot):
        await drawn(pilot, 5)
        s = runs_screen(pilot.app)
        await highlight(pilot, s, "demo-finished")
        await pilot.press("v")
        await drawn(pilot, 3)
        await pilot.press("down")
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
