"""Snapshots of the Train and Runs screens on recorded runs (running, paused, failed, finished; 80x24 and 120x40).

Update with `pytest tests/tui/test_train_snapshots.py --snapshot-update`, then LOOK at the SVGs before committing.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.tui.train_fixtures import GPU, RUNS, drawn, train_app

SIZES = [(80, 24), (120, 40)]
IDS = ["80x24", "120x40"]
REL = os.path.relpath(RUNS)  # paths in messages do not depend on where the repository lives


@pytest.fixture(autouse=True)
def _utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("size", SIZES, ids=IDS)
@pytest.mark.parametrize("run", ["demo-running", "demo-paused", "demo-failed", "demo-finished"])
def test_train(snap_compare, run, size):
    app, _ = train_app(RUNS.__class__(REL), run)

    async def run_before(pilot):
        await drawn(pilot, 10)
        pilot.app.clear_notifications()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_train_gpu(snap_compare):
    app, _ = train_app(RUNS.__class__(REL), "demo-running", hardware=GPU)
    assert snap_compare(app, terminal_size=(120, 40), run_before=lambda pilot: drawn(pilot, 10))


@pytest.mark.parametrize("size", SIZES, ids=IDS)
def test_runs_compare(snap_compare, size):
    app, _ = train_app(RUNS.__class__(REL), start="runs")

    async def run_before(pilot):
        await drawn(pilot, 5)
        screen = pilot.app.screen
        table = screen.query_one("#runs")
        for rid in ("demo-finished", "demo-failed"):
            table.move_cursor(row=[i.run_id for i in screen.infos].index(rid))
            await pilot.press("space")
        await pilot.press("c")
        await drawn(pilot, 5)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_start_form(snap_compare):
    app, _ = train_app(RUNS.__class__(REL))
    assert snap_compare(app, terminal_size=(80, 24), run_before=lambda pilot: drawn(pilot, 3))
