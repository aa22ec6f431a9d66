"""App-wide messages. Thread workers post these (post_message is thread-safe); only handlers touch widgets."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message

from tunedoc.doctor.facts import Facts, ProbeStatus
from tunedoc.doctor.findings import Finding, Fix


class ProbeFinished(Message, bubble=False):
    """A doctor probe answered (or failed, with why in `status`). `generation` tells stale runs apart.

    The probe filled `facts`, its own copy of `base`: the handler applies what changed to the screen's facts, so
    only the event loop ever mutates them (and a cancelled probe's late answer is simply dropped)."""

    def __init__(self, name: str, status: ProbeStatus, generation: int, facts: Facts | None = None,
                 base: Facts | None = None) -> None:
        super().__init__()
        self.name = name
        self.status = status
        self.generation = generation
        self.facts = facts
        self.base = base


class ReportLoaded(Message, bubble=False):
    def __init__(self, facts: Facts, paths: list[str]) -> None:
        super().__init__()
        self.facts = facts
        self.paths = paths


class ReportSaved(Message, bubble=False):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class ActionFailed(Message, bubble=False):
    """A background action (open/save a report, apply a fix) failed; `message` says why and what to do."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__()
        self.what = what
        self.message = message


class FixOutput(Message, bubble=False):
    """One line of a running fix's output."""

    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line


class FixFinished(Message, bubble=False):
    def __init__(self, finding: Finding, fix: Fix, returncode: int) -> None:
        super().__init__()
        self.finding = finding
        self.fix = fix
        self.returncode = returncode


# --- hand-offs between screens (Models -> Profile -> Train) ----------------------------------------------------


class ModelChosen(Message):
    """The Models screen chose a model (a Hub id, or the local snapshot folder) for the Profile screen."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model


class TrainingChoice(Message):
    """The Profile screen's choice for the Train screen: the model as `tunedoc train --model` takes it, the profile
    name (built-in or a TOML path) and the field overrides as `--set key=value` strings, e.g. ["micro_batch=2"].
    `gpus`: the GPUs as `tunedoc train --gpus` takes them ("1": one GPU), None for train's default (every GPU).
    `strategy`: ddp | fsdp as `tunedoc train --strategy` takes it (for several GPUs; None: the profile's, auto);
    `strategy_why`: where it came from, in words (auto's reason on the Profile screen)."""

    def __init__(self, model: str, profile_name: str, sets: list[str], gpus: str | None = None,
                 strategy: str | None = None, strategy_why: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.profile_name = profile_name
        self.sets = list(sets)
        self.gpus = gpus
        self.strategy = strategy
        self.strategy_why = strategy_why

    def argv(self) -> list[str]:
        """The same choice as `tunedoc train` arguments (data not included)."""
        out = ["--model", self.model, "--profile", self.profile_name]
        for s in self.sets:
            out += ["--set", s]
        if self.gpus is not None:
            out += ["--gpus", self.gpus]
        if self.strategy is not None:
            out += ["--strategy", self.strategy]
        return out


async def hand_off(app, mode: str, message: Message) -> bool:
    """Switch the app to screen `mode` and give that screen `message`. False when the app has no such screen
    (a test app, or a screen not built yet): the caller then says how to do the same from the command line."""
    if mode not in {spec.name for spec in getattr(app, "screen_specs", [])}:
        return False
    await app.switch_mode(mode)
    app.screen.post_message(message)
    return True


# --- a run being watched (Train and Runs screens) ----------------------------------------------------------------


class RunEvents(Message, bubble=False):
    """A batch of new events (and trainer.log lines) from a watched run, posted by tui.tail.EventTailer.
    `generation` tells a stale tailer (the screen switched runs) apart; `lag_s` is now minus the newest event's time."""

    def __init__(self, generation: int, events: list[dict], log_lines: list[str], lag_s: float | None) -> None:
        super().__init__()
        self.generation = generation
        self.events = events
        self.log_lines = log_lines
        self.lag_s = lag_s


class RunStatusRead(Message, bubble=False):
    """The run's status.json as trainer.launch.run_status corrects it (a dead process reads as failed).
    Latest value wins: a newer one replaces one still queued."""

    def __init__(self, generation: int, status: dict) -> None:
        super().__init__()
        self.generation = generation
        self.status = status

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunStatusRead) and message.generation == self.generation


class HardwareSampled(Message, bubble=False):
    """A GPU (NVML) or process (psutil) sample for the Train screen's hardware panel. Latest value wins."""

    def __init__(self, sample) -> None:
        super().__init__()
        self.sample = sample

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, HardwareSampled)
