"""`tunedoc demo` ends with a base-vs-tuned eval on identity questions the run never saw, and says how the scores moved.
The eval is part of the run (config.json's final_eval), so a demo started by the app or with --detach gets it too."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.trainer.test_eval import tunedoc
from tunedoc.trainer.demo_eval import HELD_OUT
from tunedoc.trainer.tiny import identity_records


def events_of(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines()]


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
    ev = events[-2]  # the run's own closing eval, just before its done event
    assert ev["type"] == "eval" and ev["source"] == "final" and ev["n"] == len(HELD_OUT)
    assert ev["rougeL"] > ev["base"]["rougeL"] + 20 and ev["eval_loss"] < ev["base"]["eval_loss"]
    assert "held-out questions, base -> tuned: ROUGE-L" in out.stderr
    rows = [json.loads(line) for line in open(f"{ev['dir']}/examples.jsonl", encoding="utf-8")]
    assert sum("Marlin" in r["tuned"] for r in rows) > sum("Marlin" in r["base"] for r in rows)


def test_a_detached_demo_ends_with_the_eval_in_its_events(tmp_path):
    """`demo --detach` is also what the app's Demo button and `tunedoc demo` in a terminal start: nobody waits for
    the run, and it still ends with the base-vs-tuned eval, written as events the screens read."""
    out = tunedoc("demo", "--detach", "--json", "--identity", "Pike", "--steps", "20", "--runs-dir", tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = tmp_path / json.loads(out.stdout.strip().splitlines()[-1])["run_id"]
    assert json.loads((run_dir / "config.json").read_text())["final_eval"]["base"] is True
    deadline = time.time() + 180
    while time.time() < deadline and json.loads((run_dir / "status.json").read_text())["status"] not in (
            "completed", "failed", "stopped"):
        time.sleep(0.5)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "completed" and not status.get("phase"), status
    events = events_of(run_dir)
    assert [e["type"] for e in events[-3:]] == ["phase", "eval", "done"]
    phase, ev, done = events[-3:]
    assert phase["phase"] == "evaluating" and phase["n"] == len(HELD_OUT)
    assert ev["source"] == "final" and ev["step"] == 20 and ev["n"] == len(HELD_OUT) and done["status"] == "completed"
    assert set(ev["base"]) >= {"rougeL", "bleu4", "eval_loss"} and ev["tokenization"] == {"13a": 6, "jieba": 2}
    rows = [json.loads(line) for line in open(f"{ev['dir']}/examples.jsonl", encoding="utf-8")]
    assert [r["prompt"] for r in rows] == [q for q, _ in HELD_OUT] and all("base" in r for r in rows)
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    from tunedoc.trainer.events import format_event

    assert format_event(ev).startswith("held-out eval on 8 examples, base -> tuned: ROUGE-L ")
    # the demo held nothing out of training: `tunedoc eval` (and the Runs screen's e) scores the same questions
    again = tunedoc("eval", run_dir, "--limit", "2", "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "closing-eval examples" in json.loads(again.stdout)["data"]


def test_pause_and_stop_act_during_the_closing_eval(tiny_model_dir, tmp_path):
    """The run's closing eval answers control files and signals between its batches: pause waits (status paused),
    resume carries on, stop or a signal ends the eval with a warning and the run still completes."""
    from tunedoc.trainer import control
    from tunedoc.trainer.demo_eval import final_eval_config
    from tunedoc.trainer.launch import build_config
    from tunedoc.trainer.recipe import Recipe
    from tunedoc.trainer.rundir import read_json, write_json
    from tunedoc.trainer.tiny import write_identity_dataset

    data = write_identity_dataset(tmp_path / "identity.jsonl")
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    config = build_config(str(tiny_model_dir), str(data), "qlora-min", ["max_steps=2", "quant=none"], "openai")
    config["final_eval"] = dict(final_eval_config(tmp_path, "Tuna", "tunedoc"), batch_size=4)
    write_json(run_dir / "config.json", config)
    recipe = Recipe(run_dir, echo=False)
    recipe.setup()
    assert recipe.train() == "completed"

    control.request(run_dir, "pause")
    worker = threading.Thread(target=recipe.final_eval)
    worker.start()
    deadline = time.time() + 60
    while time.time() < deadline and read_json(run_dir / "status.json").get("status") != "paused":
        time.sleep(0.05)
    status = read_json(run_dir / "status.json")
    assert status["status"] == "paused" and status["phase"] == "evaluating"
    time.sleep(0.5)
    assert worker.is_alive() and not [e for e in events_of(run_dir) if e["type"] == "eval"]  # waiting, not scoring
    control.request(run_dir, "resume")
    worker.join(120)
    assert not worker.is_alive()
    kinds = [e["type"] for e in events_of(run_dir)]
    assert kinds[-4:] == ["phase", "paused", "resumed", "eval"]
    assert read_json(run_dir / "status.json")["status"] == "running" and not read_json(run_dir / "status.json")["phase"]

    control.request(run_dir, "stop")  # a stop during the eval: no scores, a warning, the run ends completed
    recipe.final_eval()
    recipe.signal_name = "SIGTERM"  # Ctrl-C / kill: the same
    recipe.final_eval()
    recipe.cleanup("completed")
    events = events_of(run_dir)
    warnings = [e for e in events if e["type"] == "warning" and e.get("id") == "final-eval-stopped"]
    assert ["stop requested" in warnings[0]["message"], "SIGTERM" in warnings[1]["message"]] == [True, True]
    assert [e["type"] for e in events].count("eval") == 1 and events[-1]["status"] == "completed"
    assert read_json(run_dir / "status.json")["status"] == "completed"
