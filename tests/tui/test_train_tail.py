"""The events tailer: a torn last line, a fast writer, back-off when the UI is busy, trainer.log lines."""

from __future__ import annotations

import json
import queue
import threading
import time

from tunedoc.trainer.events import EventWriter
from tunedoc.tui.messages import RunEvents, RunStatusRead
from tunedoc.tui.tail import EventTailer


class Target:
    """Stands in for the screen: collects messages; `busy` fakes a long message queue."""

    def __init__(self) -> None:
        self.messages: queue.Queue = queue.Queue()
        self.busy = 0

    def post_message(self, message) -> bool:
        self.messages.put(message)
        return True

    @property
    def message_queue_size(self) -> int:
        return self.busy

    def events(self) -> list[dict]:
        out = []
        while not self.messages.empty():
            m = self.messages.get()
            if isinstance(m, RunEvents):
                out += m.events
        return out


def test_torn_line_is_read_once_complete(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"v": 1, "t": 1, "type": "step", "step": 1, "loss": 2.0}\n{"v": 1, "t": 2, "type": "st')
    target = Target()
    tailer = EventTailer(tmp_path, target, generation=1)
    assert tailer.read_once()
    assert [e["step"] for e in target.events()] == [1]
    assert not tailer.read_once()  # the torn line stays unread
    with open(path, "a") as f:
        f.write('ep", "step": 2, "loss": 1.5}\n')
    assert tailer.read_once()
    assert [(e["step"], e["loss"]) for e in target.events()] == [(2, 1.5)]


def test_fast_writer_loses_nothing_and_keeps_order(tmp_path):
    target = Target()
    tailer = EventTailer(tmp_path, target, generation=3, poll_s=0.01)
    tailer.start()
    n = 3000
    with EventWriter(tmp_path / "events.jsonl") as w:
        for i in range(1, n + 1):
            w.emit("step", step=i, loss=1.0 / i)
    deadline = time.time() + 10
    got: list[dict] = []
    while len(got) < n and time.time() < deadline:
        got += target.events()
        time.sleep(0.01)
    tailer.stop()
    tailer.join(2)
    assert [e["step"] for e in got] == list(range(1, n + 1))


def test_busy_ui_gets_fewer_bigger_batches(tmp_path):
    target = Target()
    target.busy = 100
    tailer = EventTailer(tmp_path, target, generation=1, poll_s=0.01, max_queue=8)
    tailer.start()
    with EventWriter(tmp_path / "events.jsonl") as w:
        for i in range(500):
            w.emit("step", step=i + 1, loss=1.0)
    time.sleep(0.2)
    assert target.messages.empty() and tailer.backoffs > 0  # nothing posted while the queue is long
    target.busy = 0
    time.sleep(0.3)
    tailer.stop()
    tailer.join(2)
    batches = [m for m in list(target.messages.queue) if isinstance(m, RunEvents)]
    assert len(batches) == 1 and len(batches[0].events) == 500


def test_log_lines_progress_bars_and_status(tmp_path):
    (tmp_path / "trainer.log").write_text("loading\rLoading weights: 100%\nwarning: slow disk\npartial")
    target = Target()
    tailer = EventTailer(tmp_path, target, generation=7, status_fn=lambda d: {"status": "running", "pid": 1},
                         poll_s=0.01)
    tailer.start()
    time.sleep(0.2)
    tailer.stop()
    tailer.join(2)
    msgs = list(target.messages.queue)
    logs = [l for m in msgs if isinstance(m, RunEvents) for l in m.log_lines]
    assert logs == ["Loading weights: 100%", "warning: slow disk"]  # "partial" waits for its newline
    statuses = [m for m in msgs if isinstance(m, RunStatusRead)]
    assert statuses and statuses[0].generation == 7 and statuses[0].status["status"] == "running"


def test_resumed_run_supersedes_steps_after_the_checkpoint():
    from tunedoc.tui.run_model import RunView

    v = RunView()
    v.apply([{"type": "start", "total_steps": 10}] + [{"type": "step", "step": i, "loss": 5.0} for i in (1, 2, 3, 4)])
    v.apply([{"type": "start", "total_steps": 10, "resumed_from_step": 2}, {"type": "step", "step": 3, "loss": 1.0}])
    assert v.losses() == [(1, 5.0), (2, 5.0), (3, 1.0)]


def test_progress_bars_collapse_in_the_log_tail():
    from tunedoc.tui.run_model import RunView

    bar = "Loading weights: {p:3d}%|##        | {n}/21 [00:00<00:00, 29.24it/s]"
    v = RunView()
    # one batch with the whole bar: only its last line
    v.add_log_lines(["warning: x"] + [bar.format(p=p, n=n) for p, n in ((0, 0), (24, 5), (48, 10), (100, 21))]
                    + ["run 1 started"])
    assert [l.text for l in v.log] == ["warning: x", bar.format(p=100, n=21), "run 1 started"]
    # a slow bar read one tick per batch: its start, half-way and end, not every tick
    v = RunView()
    for p in range(0, 101, 10):
        v.add_log_lines([f"Map: {p}%|#| {p}/100 [00:01<00:01]"])
    assert [l.text.split("%")[0] for l in v.log] == ["Map: 0", "Map: 50", "Map: 100"]
