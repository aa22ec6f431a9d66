"""A run's event stream: `runs/<id>/events.jsonl`, the only channel from the trainer to the TUI and `watch`.

One JSON object per line, written once, flushed per line, never rewritten. Readers tolerate a torn last line
(a line without its newline is left unread until the writer finishes it). This module imports no torch: the TUI
process imports it.

Every event carries:
  v      int    schema version (SCHEMA_VERSION); readers skip fields they do not know
  t      float  unix time the event was written
  type   str    one of the types below

Types and their fields (fields marked ? may be absent or null):
  start       run_id, model (path or Hub id), profile (profile name), total_steps (optimizer steps planned),
              device ("cuda:0 NVIDIA ..." or "cpu"), versions ({package: version}), resumed_from_step? (int, when
              the run continues from a checkpoint), precision?, quant?, trainable_params?, samples?, rows?,
              packing?, micro_batch?, grad_accum?, estimate_gib? (the estimator's peak for this setup, reserved GiB),
              grad_ckpt? ("off" | "on" | "offload", after any OOM step-down), loss_impl? (the loss that runs:
              "chunked" | "fused" | "plain")
  step        step (optimizer step, 1-based), epoch (float, fractional), loss (mean over the accumulated
              micro-batches), lr, grad_norm (before clipping), tokens_per_s (non-pad tokens), samples_per_s,
              peak_mem_mb (CUDA: torch.cuda.max_memory_allocated; CPU: process RSS), mem_reserved_mb? (CUDA:
              max_memory_reserved; CPU: null), mem_kind ("cuda" or "rss": what peak_mem_mb measures),
              elapsed_s (training time so far, summed across resumes), eta_s? (seconds left)
  eval        step, loss (mean token loss on the eval split)
              kind? ("generation": answers generated and scored by `tunedoc eval` or the profile's eval_every; such
              an event has no `loss`, its teacher-forced loss is eval_loss), bleu4?, rouge1?, rouge2?, rougeL?,
              exact_match? (0-100), eval_loss?, perplexity?, n? (examples), tokenization? ({"13a"|"jieba": count}),
              source? ("tunedoc eval" | "training" | "final": the run's closing eval, config.json's final_eval),
              dir? (RUN/eval/<time>/), base? ({the same scores for the base model alone}), best? (true when
              save_best kept this step's adapter), data? (where the examples came from)
  phase       phase ("evaluating": the steps are done and the run scores its closing eval, config.json's
              final_eval; the `eval` or `done` event that follows ends it), message, n? (examples)
  sample      step, prompt, text (the generated reply)
  checkpoint  step, path (the checkpoint directory), reason ("every", "request", "stop", "signal", "end")
  warning     message, id? (stable id, e.g. "cpu-optimizer", "oom-fallback")
  error       message, id? (e.g. "cuda-oom", "nan-loss", "crash", "data"), hint? (what to do next)
  paused      step           (the run waits for a resume control file)
  resumed     step
  done        status ("completed" | "stopped" | "failed"), final_loss?, steps, elapsed_s, adapter? (path),
              memory? ({estimate_gib, kind: "reserved", unit: "GiB", measured_gib? and error_pct? on CUDA})

A resumed run appends to the same file: a second `start` with resumed_from_step=N, then steps N+1, ... again.
Steps after N logged before the interruption (a kill -9 between checkpoints) are superseded by the new ones;
readers that plot the curve keep the latest event per step.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

SCHEMA_VERSION = 1
EVENT_TYPES = ("start", "step", "eval", "sample", "checkpoint", "warning", "error", "paused", "resumed", "phase",
               "done")


class EventWriter:
    """Append events to a JSONL file; each `emit` writes one whole line and flushes it to the OS.

    Lines are written with a single `write` call on a file opened in append mode, so a reader never sees half of
    a line from this writer except while that write is in progress (the torn-line case readers handle).
    """

    def __init__(self, path: str | os.PathLike, echo=None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8", newline="\n")
        self._echo = echo  # optional callable(event) for foreground progress printing

    def emit(self, type: str, **fields: Any) -> dict[str, Any]:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}; valid: {', '.join(EVENT_TYPES)}")
        event = {"v": SCHEMA_VERSION, "t": round(time.time(), 3), "type": type, **fields}
        self._f.write(json.dumps(event, ensure_ascii=False, allow_nan=False, default=_jsonable) + "\n")
        self._f.flush()
        if self._echo is not None:
            self._echo(event)
        return event

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)


def read_events(path: str | os.PathLike, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events from byte `offset` to the last complete line, and the offset to continue from.

    A last line without its newline (a writer mid-write, or a crash mid-line) is not consumed: the returned offset
    stops before it, so the next call reads it once it is complete. A complete line that is not valid JSON is
    skipped (with its bytes consumed) rather than stopping the reader forever. A missing file reads as empty.
    """
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for line in data[: end + 1].splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "type" in obj:
            events.append(obj)
    return events, offset + end + 1


def follow(
    path: str | os.PathLike, poll_s: float = 0.5, stop_when_done: bool = True, is_alive=None
) -> Iterator[dict[str, Any]]:
    """Yield every event already in the file, then new ones as they arrive (like `tail -f`).

    Stops after a `done` event when `stop_when_done`, or when `is_alive()` (optional callable) turns False and
    nothing new arrived, so `watch` does not hang on a run whose process died without a `done` event.
    """
    offset = 0
    while True:
        events, offset = read_events(path, offset)
        for event in events:
            yield event
            if stop_when_done and event.get("type") == "done":
                return
        if not events:
            if is_alive is not None and not is_alive():
                events, offset = read_events(path, offset)  # a last look: the run may have written before dying
                yield from events
                return
            time.sleep(poll_s)


def format_event(event: dict[str, Any]) -> str:
    """One human line per event, for `watch --plain` and foreground `train`."""
    t = event.get("type")
    if t == "step":
        mem = event.get("peak_mem_mb")
        mem_s = f"{mem:,.0f} MB {'VRAM' if event.get('mem_kind') == 'cuda' else 'RSS'}" if mem is not None else ""
        eta = event.get("eta_s")
        eta_s = f"  eta {format_duration(eta)}" if eta is not None else ""
        total = event.get("total_steps")
        step = f"{event['step']}/{total}" if total else f"{event['step']}"
        return (
            f"step {step:>9}  epoch {event.get('epoch', 0):5.2f}  loss {_num(event.get('loss'))}  "
            f"lr {event.get('lr', 0):.2e}  grad {_num(event.get('grad_norm'), 3)}  "
            f"{event.get('tokens_per_s', 0):,.0f} tok/s  {mem_s}{eta_s}"
        )
    if t == "start":
        resumed = f" (resumed from step {event['resumed_from_step']})" if event.get("resumed_from_step") else ""
        return (
            f"run {event.get('run_id')}: {event.get('model')} with profile {event.get('profile')} on "
            f"{event.get('device')}, {event.get('total_steps')} steps{resumed}"
        )
    if t == "eval" and event.get("kind") == "generation" and event.get("source") == "final" and event.get("base"):
        return (f"held-out eval on {event.get('n')} examples, base -> tuned: "
                f"{score_change(event.get('base'), event) or 'no scores'}")
    if t == "eval" and event.get("kind") == "generation":
        scores = "  ".join(f"{k} {event[k]:.2f}" for k in ("bleu4", "rougeL") if isinstance(event.get(k), (int, float)))
        base = event.get("base") or {}
        moved = "".join(f" (base {base[k]:.2f})" for k in ("rougeL",) if isinstance(base.get(k), (int, float)))
        return f"eval at step {event.get('step')} on {event.get('n')} examples: {scores}{moved}"
    if t == "eval":
        return f"eval at step {event.get('step')}: loss {_num(event.get('loss'))}"
    if t == "sample":
        text = str(event.get("text", "")).replace("\n", " ")
        return f"sample at step {event.get('step')}: {event.get('prompt')!r} -> {text!r}"
    if t == "checkpoint":
        return f"checkpoint at step {event.get('step')} ({event.get('reason', '')}): {event.get('path')}"
    if t == "warning":
        return f"warning: {event.get('message')}"
    if t == "error":
        hint = f"\n  hint: {event['hint']}" if event.get("hint") else ""
        ident = f" [{event['id']}]" if event.get("id") else ""
        return f"error{ident}: {event.get('message')}{hint}"
    if t == "paused":
        return f"paused at step {event.get('step')} (tunedoc resume RUN to continue)"
    if t == "resumed":
        return f"resumed at step {event.get('step')}"
    if t == "phase":
        return str(event.get("message") or event.get("phase"))
    if t == "done":
        adapter = f"; adapter: {event['adapter']}" if event.get("adapter") else ""
        return (
            f"done: {event.get('status')} after {event.get('steps')} steps in {format_duration(event.get('elapsed_s'))}, "
            f"final loss {_num(event.get('final_loss'))}{adapter}"
        )
    return json.dumps(event)


def score_change(base: dict[str, Any] | None, tuned: dict[str, Any] | None) -> str:
    """"ROUGE-L 3.1 -> 62.4 (+59.3), BLEU-4 0.9 -> 26.8 (+25.9), eval loss 5.61 -> 1.02 (-4.59)": how far a
    generation eval's scores moved from the base model alone to the tuned one (those both have)."""
    b, t = base or {}, tuned or {}
    parts = []
    for key, label, digits in (("rougeL", "ROUGE-L", 1), ("bleu4", "BLEU-4", 1), ("eval_loss", "eval loss", 2)):
        bv, tv = b.get(key), t.get(key)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (bv, tv)):
            parts.append(f"{label} {bv:.{digits}f} -> {tv:.{digits}f} ({tv - bv:+.{digits}f})")
    return ", ".join(parts)


def _num(x: Any, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def format_duration(s: Any) -> str:
    """Seconds as a short duration: "42s", "3m05s", "2h07m"; "-" when unknown."""
    if s is None:
        return "-"
    s = int(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{sec:02d}s" if m else f"{sec}s")
