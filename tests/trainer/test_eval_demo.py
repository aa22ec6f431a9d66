"""`tunedoc demo` ends with a base-vs-tuned eval on identity questions the run never saw, and says how the scores moved."""

from __future__ import annotations

import json

import pytest

from tests.trainer.test_eval import tunedoc
from tunedoc.trainer.demo_eval import HELD_OUT
from tunedoc.trainer.tiny import identity_records


def test_the_held_out_questions_are_not_in_the_demo_data():
    taught = {r["messages"][0]["content"] for r in identity_records("Tuna", "tunedoc")}
    assert not taught & {q for q, _ in HELD_OUT}


@pytest.mark.slow
def test_demo_ends_with_a_before_after_eval(tmp_path):
    out = tunedoc("demo", "--headless", "--identity", "Marlin", "--steps", "300", "--runs-dir", tmp_path, "--json",
                  timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert events[-1]["type"] == "done" and events[-1]["status"] == "completed"  # stdout: the run's events only
    run_dir = tmp_path / next(e for e in events if e["type"] == "start")["run_id"]
    ev = [json.loads(line) for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()][-1]
    assert ev["type"] == "eval" and ev["kind"] == "generation" and ev["n"] == len(HELD_OUT)
    assert ev["rougeL"] > ev["base"]["rougeL"] + 20 and ev["eval_loss"] < ev["base"]["eval_loss"]
    assert "held-out questions, base -> tuned: ROUGE-L" in out.stderr
    rows = [json.loads(line) for line in open(f"{ev['dir']}/examples.jsonl", encoding="utf-8")]
    assert sum("Marlin" in r["tuned"] for r in rows) > sum("Marlin" in r["base"] for r in rows)
