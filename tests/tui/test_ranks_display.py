"""A run on several ranks, as the Train screen shows it: the world size, every rank's peak memory, and the CPU and
RAM of the whole process tree (a torchrun launch trains in one child process per rank)."""

from __future__ import annotations

import subprocess
import sys
import time


from tunedoc.tui.gpu_monitor import HardwareMonitor
from tunedoc.tui.run_model import RunView
from tunedoc.tui.widgets.run_panels import StatsPanel


def test_stats_panel_names_the_ranks_and_each_peak(monkeypatch):
    view = RunView()
    view.apply([
        {"v": 1, "t": 1.0, "type": "start", "world_size": 2, "total_steps": 10},
        {"v": 1, "t": 2.0, "type": "step", "step": 3, "total_steps": 10, "loss": 2.5, "peak_mem_mb": 480.0,
         "mem_kind": "rss", "rank_peak_mem_mb": [470.0, 480.0]},
    ])
    shown = {}
    monkeypatch.setattr("tunedoc.tui.widgets.run_panels.set_content", lambda w, t: shown.setdefault("text", t.plain))
    StatsPanel().show(view, "running")
    assert "2 ranks" in shown["text"] and "ranks 470/480 MB" in shown["text"] and "peak RSS 480 MB" in shown["text"]


def test_process_reading_adds_up_the_children():
    # a parent that sleeps, with a child that holds ~200 MB: the reading must see the child's memory
    child = "import time; b = bytearray(200 * 2**20); time.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); "
                               "time.sleep(60)"])
    try:
        mon = HardwareMonitor()
        deadline = time.monotonic() + 30
        rss = 0.0
        while time.monotonic() < deadline and rss < 200:
            reading = mon.sample(parent.pid).process
            rss = reading.rss_mb if reading else 0.0
            time.sleep(0.3)
        assert rss >= 200, rss
    finally:
        import psutil

        for p in psutil.Process(parent.pid).children(recursive=True):
            p.kill()
        parent.kill()
        parent.wait()


def test_generation_evals_become_the_scores_chart_series():
    view = RunView()
    view.apply([
        {"v": 1, "t": 1.0, "type": "eval", "kind": "generation", "step": 30, "bleu4": 0.9, "rougeL": 4.5},
        {"v": 1, "t": 2.0, "type": "eval", "step": 30, "loss": 6.4},
        {"v": 1, "t": 3.0, "type": "eval", "kind": "generation", "step": 60, "bleu4": 15.2, "rougeL": 22.3},
    ])
    assert view.score_series() == [("ROUGE-L", [(30, 4.5), (60, 22.3)]), ("BLEU-4", [(30, 0.9), (60, 15.2)])]
    assert view.evals == {30: 6.4}  # the eval loss curve keeps only loss evals
