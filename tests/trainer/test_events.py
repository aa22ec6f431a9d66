"""The event stream: one flushed JSON line per event, torn last lines are never consumed half-read, and the
module stays importable without torch (the TUI imports it)."""

import json
import subprocess
import sys
import threading
import time

import pytest

from tunedoc.trainer.events import SCHEMA_VERSION, EventWriter, follow, format_event, read_events


def test_every_event_has_version_time_and_type_and_is_on_disk_before_close(tmp_path):
    path = tmp_path / "events.jsonl"
    w = EventWriter(path)
    w.emit("step", step=1, loss=2.5, lr=1e-4)
    # flushed per line: another reader sees it while the writer is still open
    lines = path.read_text().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["v"] == SCHEMA_VERSION and event["type"] == "step" and abs(event["t"] - time.time()) < 5
    w.emit("done", status="completed", steps=1)
    w.close()
    assert [e["type"] for e in read_events(path)[0]] == ["step", "done"]


def test_unknown_type_and_nan_are_refused(tmp_path):
    w = EventWriter(tmp_path / "e.jsonl")
    with pytest.raises(ValueError, match="unknown event type"):
        w.emit("stpe", step=1)
    with pytest.raises(ValueError):
        w.emit("step", loss=float("nan"))  # NaN is not JSON; the recipe reports it as an error event instead


def test_torn_last_line_is_left_for_the_next_read(tmp_path):
    path = tmp_path / "events.jsonl"
    whole = json.dumps({"v": 1, "t": 1.0, "type": "step", "step": 1}) + "\n"
    second = json.dumps({"v": 1, "t": 2.0, "type": "step", "step": 2}) + "\n"
    path.write_text(whole + second[:17])  # the writer is mid-line
    events, offset = read_events(path)
    assert [e["step"] for e in events] == [1]
    assert offset == len(whole.encode())
    events, offset2 = read_events(path, offset)  # still torn: nothing new, offset unchanged
    assert events == [] and offset2 == offset
    with open(path, "a") as f:
        f.write(second[17:])
    events, offset3 = read_events(path, offset)
    assert [e["step"] for e in events] == [2] and offset3 == path.stat().st_size


def test_garbage_complete_line_is_skipped_not_fatal(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "start"}\nnot json at all\n{"type": "done", "status": "completed"}\n')
    events, _ = read_events(path)
    assert [e["type"] for e in events] == ["start", "done"]


def test_missing_file_reads_as_empty(tmp_path):
    assert read_events(tmp_path / "nope.jsonl", 0) == ([], 0)


def test_follow_yields_history_then_new_events_and_stops_at_done(tmp_path):
    path = tmp_path / "events.jsonl"
    w = EventWriter(path)
    w.emit("start", run_id="r", total_steps=2)

    def later():
        time.sleep(0.3)
        w.emit("step", step=1, loss=1.0)
        time.sleep(0.2)
        w.emit("done", status="completed", steps=1)

    threading.Thread(target=later).start()
    seen = [e["type"] for e in follow(path, poll_s=0.05)]
    assert seen == ["start", "step", "done"]


def test_follow_ends_when_the_writer_died_without_done(tmp_path):
    path = tmp_path / "events.jsonl"
    EventWriter(path).emit("start", run_id="r")
    t0 = time.time()
    seen = list(follow(path, poll_s=0.05, is_alive=lambda: False))
    assert [e["type"] for e in seen] == ["start"] and time.time() - t0 < 2


def test_format_step_line_names_loss_speed_and_memory_kind():
    line = format_event({"type": "step", "step": 3, "total_steps": 10, "epoch": 0.5, "loss": 1.23456, "lr": 2e-4,
                         "grad_norm": 0.5, "tokens_per_s": 1234.5, "peak_mem_mb": 2048, "mem_kind": "rss",
                         "eta_s": 65})
    assert "3/10" in line and "1.2346" in line and "1,234 tok/s" in line and "RSS" in line and "1m05s" in line
    err = format_event({"type": "error", "id": "cuda-oom", "message": "CUDA out of memory", "hint": "lower it"})
    assert "[cuda-oom]" in err and "hint: lower it" in err


def test_the_closing_eval_says_it_is_evaluating_then_how_far_the_scores_moved():
    phase = {"type": "phase", "phase": "evaluating", "n": 8,
             "message": "evaluating on 8 held-out identity questions, base model vs tuned..."}
    assert format_event(phase) == phase["message"]
    final = {"type": "eval", "kind": "generation", "source": "final", "step": 800, "n": 8, "rougeL": 48.71,
             "bleu4": 26.8, "eval_loss": 0.84, "base": {"rougeL": 3.45, "bleu4": 0.83, "eval_loss": 6.97}}
    assert format_event(final) == ("held-out eval on 8 examples, base -> tuned: ROUGE-L 3.5 -> 48.7 (+45.3), "
                                   "BLEU-4 0.8 -> 26.8 (+26.0), eval loss 6.97 -> 0.84 (-6.13)")
    training = dict(final, source="training", base=None)  # a training-time eval has no base: the old line
    assert format_event(training).startswith("eval at step 800 on 8 examples: bleu4 26.80  rougeL 48.71")


def test_events_launch_and_control_import_no_torch():
    code = ("import sys, trainer.events, trainer.launch, trainer.control, trainer.rundir, trainer.cli; "
            "bad = [m for m in ('torch', 'transformers', 'peft', 'bitsandbytes', 'textual') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
