"""Follow a run directory from a thread: new events.jsonl lines, new trainer.log lines, and the run's status.

toolong's pattern: the thread only reads files and posts messages (post_message is thread-safe); it never touches a
widget. A torn last line stays unread until the writer finishes it (trainer.events.read_events). When the screen's
message queue grows (the UI is busy) the thread waits instead of posting more, so the next read is simply a bigger
batch: the screen never falls behind by more than one batch, whatever the writer's rate.

    tailer = EventTailer(run_dir, screen, generation=1, status_fn=run_status)
    tailer.start(); ...; tailer.stop()
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from textual.message_pump import MessagePump

from tunedoc.trainer.events import read_events
from tunedoc.tui.messages import RunEvents, RunStatusRead

MAX_BATCH = 5000  # events per message: a long history arrives in a few big batches, not one huge one
LOG_HISTORY_BYTES = 64 * 1024  # on attach, only the end of trainer.log


class EventTailer(threading.Thread):
    def __init__(self, run_dir: str | os.PathLike, target: MessagePump, generation: int,
                 status_fn: Callable[[Path], dict[str, Any]] | None = None, *, poll_s: float = 0.2,
                 status_every_s: float = 1.0, max_queue: int = 8, clock: Callable[[], float] = time.time) -> None:
        super().__init__(name=f"tail-{Path(run_dir).name}", daemon=True)
        self.run_dir = Path(run_dir)
        self.target = target
        self.generation = generation
        self.status_fn = status_fn
        self.poll_s = poll_s
        self.status_every_s = status_every_s
        self.max_queue = max_queue
        self.clock = clock
        self.offset = 0
        self.log_offset: int | None = None
        self._log_partial = b""
        self._stop_event = threading.Event()
        self.backoffs = 0  # how often the UI was too busy (tests and the bench read this)

    def stop(self) -> None:
        self._stop_event.set()

    @property
    def stopped(self) -> bool:
        return self._stop_event.is_set()

    def run(self) -> None:
        next_status = 0.0
        while not self._stop_event.is_set():
            if self._queue_size() > self.max_queue:
                self.backoffs += 1
                self._stop_event.wait(self.poll_s)
                continue
            found = self.read_once()
            now = time.monotonic()
            if self.status_fn is not None and now >= next_status:
                next_status = now + self.status_every_s
                try:
                    status = self.status_fn(self.run_dir)
                except Exception as e:  # a half-written file or a vanished dir must not kill the thread
                    status = {"status": "unknown", "error": f"could not read the run's status: {e}"}
                self.target.post_message(RunStatusRead(self.generation, status))
            if not found:
                self._stop_event.wait(self.poll_s)

    def read_once(self) -> bool:
        """Read what is new and post it; True when something was posted (the caller polls again at once)."""
        events, self.offset = read_events(self.run_dir / "events.jsonl", self.offset)
        lines = self._read_log()
        if not events and not lines:
            return False
        for i in range(0, max(len(events), 1), MAX_BATCH):
            chunk = events[i:i + MAX_BATCH]
            times = [e["t"] for e in chunk if isinstance(e.get("t"), (int, float))]
            lag = self.clock() - max(times) if times else None
            self.target.post_message(RunEvents(self.generation, chunk, lines if i == 0 else [], lag))
        return True

    def _read_log(self) -> list[str]:
        path = self.run_dir / "trainer.log"
        try:
            size = path.stat().st_size
        except OSError:
            return []
        if self.log_offset is None:
            self.log_offset = max(0, size - LOG_HISTORY_BYTES)
        if size < self.log_offset:  # truncated or replaced: start over
            self.log_offset, self._log_partial = 0, b""
        if size == self.log_offset:
            return []
        with open(path, "rb") as f:
            f.seek(self.log_offset)
            data = f.read(size - self.log_offset)
        self.log_offset += len(data)
        data = self._log_partial + data
        *complete, self._log_partial = data.split(b"\n")
        lines = [l.decode("utf-8", "replace").rstrip("\r") for l in complete]
        # progress bars redraw with \r: keep what the line finally shows
        return [l.rsplit("\r", 1)[-1] for l in lines if l.strip()]

    def _queue_size(self) -> int:
        try:
            return self.target.message_queue_size
        except Exception:
            return 0
