"""Pilot tests of the Runs screen: the list, died runs as failed, attach, compare."""

from __future__ import annotations

from textual.widgets import DataTable, Static

from tests.tui.train_fixtures import copy_runs, drawn, train_app
from tunedoc.tui.screens.runs import RunsScreen
from tunedoc.tui.screens.train import TrainScreen
from tunedoc.tui.widgets.loss_chart import LossChart


def runs_screen(app) -> RunsScreen:
    return next(s for s in app.screen_stack if isinstance(s, RunsScreen))


async def test_lists_runs_with_status_and_died_run_as_failed(tmp_path):
    app, _ = train_app(copy_runs(tmp_path), start="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await drawn(pilot, 5)
        s = runs_screen(app)
        t = s.query_one("#runs", DataTable)
        rows = {t.get_row_at(i)[1]: t.get_row_at(i) for i in range(t.row_count)}
        assert set(rows) == {"demo-running", "demo-paused", "demo-failed", "demo-finished"}
        assert str(rows["demo-failed"][2]) == "failed" and str(rows["demo-finished"][2]) == "completed"
        assert rows["demo-finished"][5] == "40/40" and rows["demo-finished"][6] == "1.9209"
        for _ in range(t.row_count):  # the failed run's error shows when it is highlighted
            if s.selected().run_id == "demo-failed":
                break
            await pilot.press("down")
        await pilot.pause(0.1)
        assert "gone without finishing" in str(s.query_one("#error", Static).render())


async def test_attach_opens_the_train_screen_with_history(tmp_path):
    app, _ = train_app(copy_runs(tmp_path), start="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await drawn(pilot, 5)
        s = runs_screen(app)
        while s.selected().run_id != "demo-finished":
            await pilot.press("down")
        await pilot.press("enter")
        await drawn(pilot)
        assert isinstance(app.screen, TrainScreen)
        assert app.screen.run_dir.name == "demo-finished"
        assert len(app.screen.query_one("#loss", LossChart).series[0][1]) == 40


async def test_compare_overlays_curves_and_tabulates(tmp_path):
    app, _ = train_app(copy_runs(tmp_path), start="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await drawn(pilot, 5)
        s = runs_screen(app)
        await pilot.press("c")  # nothing marked: says how
        await pilot.pause(0.1)
        assert any("mark two or more" in str(n.message) for n in app._notifications)
        for rid in ("demo-finished", "demo-failed"):
            s.query_one("#runs", DataTable).move_cursor(row=[i.run_id for i in s.infos].index(rid))
            await pilot.pause(0.05)
            await pilot.press("space")
        await pilot.press("c")
        await drawn(pilot, 3)
        chart = s.query_one("#compare-chart", LossChart)
        assert [label for label, _ in chart.series] == ["demo-finished", "demo-failed"]
        ct = s.query_one("#compare-table", DataTable)
        keys = [k.value for k in ct.columns]
        rows = [dict(zip(keys, map(str, ct.get_row_at(i)))) for i in range(ct.row_count)]
        # tunedoc compare's rows: demo-finished ended with its closing eval, base vs tuned, hence the base row
        assert [r["run"] for r in rows] == ["base (no adapter)", "demo-finished", "demo-failed"]
        fin, failed = rows[1], rows[2]
        assert (fin["train_loss"], fin["time_s"], fin["eval_loss"], fin["rougeL"]) == ("1.9209", "1m17s", "2.0056",
                                                                                       "42.55")
        assert (rows[0]["eval_loss"], rows[0]["rougeL"], rows[0]["train_loss"]) == ("6.9712", "3.45", "-")
        assert failed["train_loss"] == "3.2233" and failed["rougeL"] == "-" and failed["peak_mem_mb"].endswith("*")


async def test_pause_resume_and_stop_the_highlighted_run(tmp_path):
    runs = copy_runs(tmp_path)
    app, _ = train_app(runs, start="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await drawn(pilot, 5)
        s = runs_screen(app)
        t = s.query_one("#runs", DataTable)

        async def highlight(rid):
            t.move_cursor(row=[i.run_id for i in s.infos].index(rid))
            await pilot.pause(0.05)

        await highlight("demo-running")
        control = runs / "demo-running" / "control"
        await pilot.press("p")
        assert (control / "pause").exists()
        await pilot.press("x")
        await pilot.pause(0.2)
        assert not (control / "stop").exists()  # a confirmation first
        await pilot.press("y")
        await pilot.pause(0.2)
        assert (control / "stop").exists()
        await highlight("demo-paused")
        await pilot.press("r")
        assert (runs / "demo-paused" / "control" / "resume").exists()
        await highlight("demo-finished")  # a finished run: says why not, asks nothing
        await pilot.press("x")
        await pilot.pause(0.2)
        assert isinstance(app.screen, RunsScreen)
        assert not (runs / "demo-finished" / "control" / "stop").exists()
        assert any("not running" in str(n.message) for n in app._notifications)


async def test_refreshing_early_never_adds_a_second_poll(tmp_path):
    runs = copy_runs(tmp_path)
    app, backend = train_app(runs, start="runs")
    calls = []
    real = backend.runs
    backend.runs = lambda: calls.append(1) or real()
    async with app.run_test(size=(80, 24)) as pilot:
        await drawn(pilot, 5)
        for _ in range(3):  # R three times, and a control that refreshes a second later
            await pilot.press("R")
            await pilot.pause(0.1)
        runs_screen(app).action_control("pause")
        await pilot.pause(1.5)
        calls.clear()
        await pilot.pause(4.5)  # one poll every 2 s: two, maybe three reads, not one per refresh ever asked for
        assert 1 <= len(calls) <= 3, len(calls)
