"""Snapshots of the Doctor screen at 80x24 and 120x40 (spinners and timers frozen by a fake clock).

Update with `pytest tests/tui/test_snapshots.py --snapshot-update`, then LOOK at the SVGs before committing.
"""

from __future__ import annotations

import pytest

from tests.tui.conftest import broken_backend, doctor, healthy_backend, settle

SIZES = [(80, 24), (120, 40)]


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_probing(snap_compare, app_for, clock, size):
    backend = healthy_backend(hold=("torch", "toolkit"))
    backend.probes["toolkit"].hold = False  # toolkit answers, torch hangs

    async def run_before(pilot):
        for _ in range(100):
            await pilot.pause(0.02)
            if doctor(pilot.app).model.running() == ["torch"]:
                break
        clock.t += 7.2  # torch has been importing for 7 s
        await pilot.pause(0.2)

    assert snap_compare(app_for(backend), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_healthy_gpu_box(snap_compare, app_for, size):
    assert snap_compare(app_for(healthy_backend()), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_broken_box(snap_compare, app_for, size):
    assert snap_compare(app_for(broken_backend()), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_finding_expanded(snap_compare, app_for, size):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("down", "enter")
        await pilot.pause(0.2)

    assert snap_compare(app_for(broken_backend()), terminal_size=size, run_before=run_before)
