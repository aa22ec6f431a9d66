"""The run directory: `runs/<run-id>/` with config.json, status.json, events.jsonl, trainer.log, checkpoints/,
adapter/ and merged/. Run ids, atomic JSON writes, liveness, listing and `RUN` argument resolution.

No torch here: the TUI and `tunedoc runs` import this.

status.json (rewritten atomically by the trainer at each step and state change):
  status        "starting" | "running" | "paused" | "completed" | "stopped" | "failed"
  pid           the trainer process id; pid_started its create time (guards against pid reuse)
  step, total_steps, epoch, loss (last step loss), peak_mem_mb, mem_kind, elapsed_s (training time)
  phase         "evaluating" while a running (or paused) run scores its closing eval (config.json's final_eval),
                else null or absent
  started, updated (unix times); error, error_id (when failed)
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CONFIG = "config.json"
STATUS = "status.json"
EVENTS = "events.jsonl"
LOG = "trainer.log"
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
MERGED = "merged"

ACTIVE = ("starting", "running", "paused")
FINISHED = ("completed", "stopped", "failed")


def default_runs_dir() -> Path:
    """`$TUNEDOC_RUNS_DIR` if set, else `./runs`."""
    return Path(os.environ.get("TUNEDOC_RUNS_DIR") or "runs")


def new_run_id(model: str, name: str | None = None, runs_dir: str | os.PathLike | None = None) -> str:
    """`20250101-120000-<name or model slug>`: sortable by time, readable, safe on every file system."""
    base = name or Path(str(model).rstrip("/\\")).name or "run"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.")[:40] or "run"
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}"
    if runs_dir is not None:
        candidate, n = run_id, 2
        while (Path(runs_dir) / candidate).exists():
            candidate, n = f"{run_id}-{n}", n + 1
        run_id = candidate
    return run_id


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    for attempt in range(20):  # Windows: a reader holding the file open makes replace fail briefly
        try:
            os.replace(tmp, path)
            return
        except PermissionError:
            if attempt == 19:
                raise
            time.sleep(0.05)


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object in `path`, or {} when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def update_status(run_dir: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into status.json (only the trainer writes it, so read-modify-write is safe)."""
    path = Path(run_dir) / STATUS
    status = read_json(path)
    status.update(fields)
    status["updated"] = time.time()
    write_json(path, status)
    return status


def process_alive(pid: int | None, started: float | None = None) -> bool:
    """True when `pid` runs and (if `started` is given) is the same process that wrote it, not a reused pid."""
    if not pid:
        return False
    import psutil

    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if started is not None and abs(proc.create_time() - float(started)) > 2.0:
            return False
        return True
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def last_error(run_dir: str | os.PathLike) -> str | None:
    """The message of the last `error` event, or the last non-empty line of trainer.log."""
    from tunedoc.trainer.events import read_events

    events, _ = read_events(Path(run_dir) / EVENTS)
    errors = [e for e in events if e.get("type") == "error"]
    if errors:
        return str(errors[-1].get("message"))
    try:
        lines = [l for l in (Path(run_dir) / LOG).read_text(encoding="utf-8", errors="replace").splitlines() if l]
        return lines[-1] if lines else None
    except OSError:
        return None


def run_status(run_dir: str | os.PathLike) -> dict[str, Any]:
    """status.json, corrected: a run that says starting/running/paused but whose process is gone is "failed",
    with `error` set to the last error event (or log line) and `died` True."""
    status = read_json(Path(run_dir) / STATUS)
    if not status:
        return {"status": "unknown", "error": "no status.json: not a tunedoc run directory, or it never started"}
    if status.get("status") in ACTIVE and not process_alive(status.get("pid"), status.get("pid_started")):
        # starting: the launcher wrote status before the child existed; give a fresh launch a few seconds
        if status.get("status") == "starting" and time.time() - float(status.get("updated", 0)) < 15:
            return status
        status = dict(status)
        status["status"] = "failed"
        status["died"] = True
        err = last_error(run_dir)
        status["error"] = (
            f"the trainer process (pid {status.get('pid')}) is gone without finishing"
            + (f"; last message: {err}" if err else "")
            + f"; see {Path(run_dir) / LOG}; `tunedoc train --resume {Path(run_dir).name}` continues from the "
            "last checkpoint"
        )
    return status


@dataclass
class RunInfo:
    """One row of `tunedoc runs` and the Runs screen."""

    run_id: str
    run_dir: str
    status: str
    model: str
    profile: str
    step: int
    total_steps: int | None
    loss: float | None
    duration_s: float | None
    peak_mem_mb: float | None
    mem_kind: str | None
    started: float | None
    error: str | None
    world_size: int = 1  # processes (ranks) the run trains on
    phase: str | None = None  # "evaluating": its steps are done and it scores its closing eval (status running)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def shown_status(self) -> str:
        """The status to show a person: "evaluating" for a running run busy with its closing eval."""
        return "evaluating" if self.status == "running" and self.phase == "evaluating" else self.status


def run_info(run_dir: str | os.PathLike) -> RunInfo:
    run_dir = Path(run_dir)
    config = read_json(run_dir / CONFIG)
    status = run_status(run_dir)
    return RunInfo(
        run_id=run_dir.name,
        run_dir=str(run_dir),
        status=status.get("status", "unknown"),
        model=str(config.get("model", "?")),
        profile=str(config.get("profile", {}).get("name", "?")) if isinstance(config.get("profile"), dict) else "?",
        step=int(status.get("step") or 0),
        total_steps=status.get("total_steps"),
        loss=status.get("loss"),
        duration_s=status.get("elapsed_s"),
        peak_mem_mb=status.get("peak_mem_mb"),
        mem_kind=status.get("mem_kind"),
        started=status.get("started") or config.get("created"),
        error=status.get("error") if status.get("status") == "failed" else None,
        world_size=int(status.get("world_size") or 1),
        phase=status.get("phase") if status.get("status") in ACTIVE else None,
    )


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[RunInfo]:
    """Every run under `runs_dir` (default: default_runs_dir()), newest first."""
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if not root.is_dir():
        return []
    dirs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and is_run_dir(d)]
    infos = [run_info(d) for d in dirs]
    infos.sort(key=lambda r: (r.started or 0, r.run_id), reverse=True)
    return infos


def is_run_dir(d: Path) -> bool:
    """A run dir has config.json AND status.json (a model dir has only config.json)."""
    return (d / CONFIG).is_file() and (d / STATUS).is_file()


class RunNotFound(LookupError):
    pass


def resolve_run(arg: str, runs_dir: str | os.PathLike | None = None) -> Path:
    """A RUN argument -> run directory: a path to a run dir, a run id, or a unique prefix of one.
    Raises RunNotFound with a message that lists candidates."""
    p = Path(arg)
    if is_run_dir(p):
        return p
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if is_run_dir(root / arg):
        return root / arg
    runs = [d for d in root.iterdir() if not d.name.startswith(".") and is_run_dir(d)] if root.is_dir() else []
    matches = [d for d in runs if d.name.startswith(arg)]
    if len(matches) == 1:
        return matches[0]
    if not matches:  # a substring (e.g. the name part of the id) when unique
        matches = [d for d in runs if arg in d.name]
        if len(matches) == 1:
            return matches[0]
    if matches:
        names = ", ".join(sorted(d.name for d in matches)[:10])
        raise RunNotFound(f"{arg!r} matches several runs: {names}; give more of the run id")
    known = ", ".join(sorted((d.name for d in runs), reverse=True)[:5]) or "none"
    raise RunNotFound(
        f"no run {arg!r} in {root} (recent runs: {known}); pass a run id, a unique prefix, or a run directory "
        "path, and --runs-dir (or TUNEDOC_RUNS_DIR) if the runs live elsewhere"
    )


# ---------------------------------------------------------------------------------------------------------------
# secrets

_TOKEN_RE = re.compile(r"\b(hf_[A-Za-z0-9]{20,}|api_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,})\b")
SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "WANDB_API_KEY", "OPENAI_API_KEY")


def redact(value: Any) -> Any:
    """Remove tokens from strings inside `value` (nested dicts/lists): known token shapes and the values of the
    usual secret environment variables."""
    secrets = [os.environ[k] for k in SECRET_ENV if len(os.environ.get(k, "")) >= 8]
    def scrub(s: str) -> str:
        for sec in secrets:
            s = s.replace(sec, "<redacted>")
        return _TOKEN_RE.sub("<redacted>", s)
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value
