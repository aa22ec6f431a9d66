"""The training profile: every knob of a QLoRA/LoRA run, one documented field each.

A profile is plain data. Built-in profiles are commented TOML files beside this module; users copy one and edit
it, or change single fields with `--set key=value`. Validation reports every problem at once.

This module imports no torch: the TUI and the estimator use it too.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

QUANTS = ("nf4", "nf4-dq", "int8", "none")
OPTIMIZERS = ("adamw", "adamw-8bit", "paged-adamw-8bit")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
GRAD_CKPTS = ("off", "on", "offload")
LOSS_IMPLS = ("auto", "chunked", "fused", "plain")  # trainer/loss.py
STRATEGIES = ("auto", "ddp", "fsdp")  # trainer/distributed.py, trainer/fsdp.py
# older profile files and saved runs: grad_ckpt was true/false, some wrote gradient_checkpointing
OLD_NAMES = {"gradient_checkpointing": "grad_ckpt"}
EVAL_METRICS = ("bleu4", "rouge1", "rouge2", "rougeL", "exact_match")  # trainer/eval_metrics.py

BUILTIN_DIR = Path(__file__).parent


@dataclass
class Profile:
    """A QLoRA/LoRA training setup. Field docs say what each one does to memory, speed and quality."""

    name: str = "custom"
    """Name shown in lists; built-ins use their file name."""
    description: str = ""
    """One line on when to use this profile."""

    quant: str = "nf4-dq"
    """Base weights: nf4 (4-bit NormalFloat, QLoRA), nf4-dq (nf4 plus double quantization of the block constants,
    ~0.4 bit/param less), int8 (LLM.int8, 8-bit), none (16-bit LoRA). Lower bits: less memory, a little slower."""
    lora_r: int = 16
    """LoRA rank. Higher learns more, costs more memory for adapter weights, gradients and optimizer states."""
    lora_alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r). Common choice: 2 x r."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA input. 0 is fastest; 0.05-0.1 regularizes small data sets."""
    lora_targets: list[str] | str = "all-linear"
    """Which linear layers get adapters: "all-linear" (QLoRA paper default, best quality) or a list of module
    names such as ["q_proj", "v_proj"] (less memory, less quality)."""

    cutoff_len: int = 1024
    """Maximum tokens per sample; longer samples are truncated. Activations grow linearly with it."""
    micro_batch: int = 1
    """Samples per forward/backward pass. Activation memory grows linearly with it."""
    grad_accum: int = 8
    """Micro-batches accumulated per optimizer step. Effective batch = micro_batch x grad_accum; free in memory."""
    grad_ckpt: str = "on"
    """Gradient (activation) checkpointing: off (every layer keeps its activations: fastest, most memory), on
    (keep each layer's input, recompute the rest in backward: most activation memory saved, ~30 % more compute),
    offload (as on, and the kept layer inputs move to pinned CPU RAM until backward needs them: activations
    nearly gone from the GPU, about 10-20 % slower again from the PCIe copies, and that much CPU RAM used; on
    the CPU it is the same as on). true/false in older files mean on/off."""
    loss_impl: str = "auto"
    """How the loss is computed: chunked (the lm_head applied to a few hundred tokens at a time, the full logits
    never held: saves tokens x vocabulary x ~12 bytes, same speed), fused (Liger-Kernel's fused linear
    cross-entropy, CUDA only, needs `pip install 'tunedoc[fast]'`), plain (full fp32 logits, the reference),
    auto (fused where Liger is installed on CUDA, else chunked)."""
    optimizer: str = "paged-adamw-8bit"
    """adamw (32-bit states, 8 bytes/trainable param), adamw-8bit (2 bytes/param), paged-adamw-8bit (8-bit states
    that page to CPU RAM under memory pressure; CUDA only, falls back to adamw on CPU)."""
    lr: float = 2e-4
    """Peak learning rate. QLoRA typically 1e-4 to 3e-4."""
    scheduler: str = "cosine"
    """Learning-rate schedule after warmup: cosine, linear, constant, constant_with_warmup."""
    warmup: float = 0.03
    """Warmup: a fraction of total steps when < 1, else a number of steps."""
    epochs: float = 3.0
    """Passes over the training data."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run all epochs). Overrides epochs when set."""
    packing: bool = True
    """Join samples into full cutoff_len rows (attention never crosses sample boundaries): no padding waste,
    much faster on mixed lengths."""
    precision: str = "auto"
    """Compute dtype: auto (bf16 on Ampere+, fp16 on older GPUs, fp32 on CPU), bf16, fp16, fp32."""
    strategy: str = "auto"
    """Several GPUs or processes: ddp (every GPU holds the whole quantized model; only the LoRA gradients travel),
    fsdp (the model, adapter, gradients and optimizer states sharded over the GPUs, FSDP-QLoRA: 1/N of them per GPU,
    at the cost of gathering each layer's weights every step; rank 0 loads the model into CPU RAM and each GPU
    receives only its shards, so a model too big for one card loads), auto (ddp when the model fits one GPU by the estimate, fsdp when only its shards fit; ddp for CPU
    processes). One GPU: unused."""

    eval_split: float = 0.0
    """Fraction of samples held out for evaluation (0 disables eval)."""
    sample_every: int = 0
    """Generate from sample_prompts every N optimizer steps (0: only at the end)."""
    sample_prompts: list[str] = field(default_factory=list)
    """Prompts used for sample generations shown while training."""
    save_every: int = 0
    """Save a checkpoint every N optimizer steps (0: only at the end and on request)."""
    eval_every: int = 0
    """Generate answers for the eval split every N optimizer steps and score them (0: never; needs eval_split)."""
    eval_metrics: list[str] = field(default_factory=lambda: ["bleu4", "rougeL"])
    """Scores of that eval: bleu4, rouge1, rouge2, rougeL, exact_match (the [eval] extra computes them)."""
    eval_limit: int = 16
    """Held-out examples that eval uses (the first N of the eval split): keeps it to seconds."""
    save_best: str = ""
    """Keep the adapter of the best eval so far in RUN/best/ by this metric, e.g. "rougeL" ("": off)."""
    seed: int = 42
    """Random seed for data order, LoRA init and dropout."""

    def __post_init__(self):
        if isinstance(self.grad_ckpt, bool):  # Profile(grad_ckpt=True) in code written before off|on|offload
            self.grad_ckpt = "on" if self.grad_ckpt else "off"

    # ------------------------------------------------------------------------------------------------------
    @property
    def checkpointing(self) -> bool:
        """Gradient checkpointing on (with or without offload)."""
        return self.grad_ckpt != "off"

    @property
    def effective_batch(self) -> int:
        return self.micro_batch * self.grad_accum

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Profile":
        """Build and validate; raises ProfileError listing every problem."""
        problems = []
        data = dict(data)
        for old, new in OLD_NAMES.items():
            if old in data:
                value = data.pop(old)
                data.setdefault(new, value)
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                problems.append(f"unknown field {key!r}; valid fields: {', '.join(sorted(known))}")
        values = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                try:
                    values[f.name] = _coerce(f.name, data[f.name])
                except ValueError as e:
                    problems.append(str(e))
        prof = cls(**values)  # fields that failed to coerce keep their defaults, so every problem is listed
        problems.extend(prof.problems())
        if problems:
            raise ProfileError(problems)
        return prof

    def problems(self) -> list[str]:
        """Every invalid value, as sentences that name the field and the valid choices."""
        p = []
        if self.quant not in QUANTS:
            p.append(f"quant={self.quant!r} is not valid; choose one of: {', '.join(QUANTS)}")
        if self.optimizer not in OPTIMIZERS:
            p.append(f"optimizer={self.optimizer!r} is not valid; choose one of: {', '.join(OPTIMIZERS)}")
        if self.precision not in PRECISIONS:
            p.append(f"precision={self.precision!r} is not valid; choose one of: {', '.join(PRECISIONS)}")
        if self.grad_ckpt not in GRAD_CKPTS:
            p.append(f"grad_ckpt={self.grad_ckpt!r} is not valid; choose one of: {', '.join(GRAD_CKPTS)}")
        if self.loss_impl not in LOSS_IMPLS:
            p.append(f"loss_impl={self.loss_impl!r} is not valid; choose one of: {', '.join(LOSS_IMPLS)}")
        if self.strategy not in STRATEGIES:
            p.append(f"strategy={self.strategy!r} is not valid; choose one of: {', '.join(STRATEGIES)}")
        if self.scheduler not in SCHEDULERS:
            p.append(f"scheduler={self.scheduler!r} is not valid; choose one of: {', '.join(SCHEDULERS)}")
        for name in ("lora_r", "lora_alpha", "cutoff_len", "micro_batch", "grad_accum"):
            if getattr(self, name) < 1:
                p.append(f"{name}={getattr(self, name)} must be at least 1")
        if not 0 <= self.lora_dropout < 1:
            p.append(f"lora_dropout={self.lora_dropout} must be in [0, 1)")
        if self.lr <= 0:
            p.append(f"lr={self.lr} must be positive")
        if self.warmup < 0:
            p.append(f"warmup={self.warmup} must be >= 0")
        if self.epochs <= 0 and self.max_steps <= 0:
            p.append("epochs must be positive unless max_steps is set")
        if not 0 <= self.eval_split < 1:
            p.append(f"eval_split={self.eval_split} must be in [0, 1)")
        bad = [m for m in self.eval_metrics if m not in EVAL_METRICS]
        if bad:
            p.append(f"eval_metrics={bad!r}: choose from {', '.join(EVAL_METRICS)}")
        if self.save_best and self.save_best not in EVAL_METRICS:
            p.append(f"save_best={self.save_best!r}: choose one of {', '.join(EVAL_METRICS)}, or \"\" for off")
        if self.save_best and not self.eval_every:
            p.append(f"save_best={self.save_best!r} needs eval_every (steps between evals) and eval_split")
        if self.eval_limit < 1:
            p.append(f"eval_limit={self.eval_limit} must be at least 1")
        for name in ("sample_every", "save_every", "eval_every"):
            if getattr(self, name) < 0:
                p.append(f"{name}={getattr(self, name)} must be >= 0")
        if isinstance(self.lora_targets, str) and self.lora_targets != "all-linear":
            p.append(f"lora_targets={self.lora_targets!r}: use \"all-linear\" or a list of module names")
        if isinstance(self.lora_targets, list) and not self.lora_targets:
            p.append("lora_targets is an empty list; use \"all-linear\" or name modules such as q_proj")
        return p

    def with_overrides(self, sets: list[str]) -> "Profile":
        """Apply `key=value` strings (from `--set`); raises ProfileError listing every problem."""
        data = self.to_dict()
        problems = []
        for item in sets:
            if "=" not in item:
                problems.append(f"--set {item!r}: expected key=value")
                continue
            key, value = item.split("=", 1)
            data[key.strip()] = _parse_value(value.strip())
        if problems:
            raise ProfileError(problems)
        return Profile.from_dict(data)


class ProfileError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid profile:\n" + "\n".join(f"  - {p}" for p in problems))


_TYPES: dict[str, type] = {}


def _field_types() -> dict[str, Any]:
    if not _TYPES:
        defaults = Profile()
        for f in dataclasses.fields(Profile):
            _TYPES[f.name] = type(getattr(defaults, f.name))
    return _TYPES


def _coerce(name: str, value: Any) -> Any:
    tp = _field_types()[name]
    if name == "lora_targets":
        if isinstance(value, str) and value != "all-linear":
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, (list, str)):
            return value
        raise ValueError(f"lora_targets={value!r}: use \"all-linear\" or a list of module names")
    if name == "grad_ckpt":
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, str):
            v = value.strip().lower()
            if v in ("true", "yes", "1"):
                return "on"
            if v in ("false", "no", "0"):
                return "off"
            return v
        raise ValueError(f"grad_ckpt={value!r}: choose one of: {', '.join(GRAD_CKPTS)}")
    if name == "eval_metrics" and isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if name in ("sample_prompts", "eval_metrics"):
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise ValueError(f"{name}={value!r}: expected a list of strings")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ValueError(f"{name}={value!r}: expected true or false")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"{name}={value!r}: expected an integer")
        try:
            f = float(value)
        except ValueError:
            raise ValueError(f"{name}={value!r}: expected an integer") from None
        if f != int(f):
            raise ValueError(f"{name}={value!r}: expected an integer")
        return int(f)
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name}={value!r}: expected a number") from None
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{name}={value!r}: expected text")
        return value
    return value


def _parse_value(text: str) -> Any:
    """`--set` values: TOML literals where they parse (numbers, true/false, ["a","b"]), else the raw text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A built-in profile by name, or a TOML file by path. Raises ProfileError / FileNotFoundError."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = BUILTIN_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise FileNotFoundError(
                f"no profile named {name_or_path!r}; built-in profiles: {', '.join(builtin_names()) or '(none)'}"
            )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"profile file {str(path)!r} does not exist; pass a .toml file or a built-in name "
                                f"({', '.join(builtin_names()) or 'none'})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileError([f"{path}: cannot read it as a UTF-8 TOML file ({e})"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ProfileError([toml_error_text(path, e, text)]) from None
    data.setdefault("name", path.stem)
    return Profile.from_dict(data)


def toml_error_text(path: str | Path, e: "tomllib.TOMLDecodeError", text: str = "") -> str:
    """`file:line:col: message` for a TOML syntax error, as compilers print them (editors jump to it)."""
    import re

    line, col, msg = getattr(e, "lineno", None), getattr(e, "colno", None), getattr(e, "msg", None)
    if line is None:  # Python < 3.14: "Invalid value (at line 3, column 1)"
        m = re.search(r"^(.*?)\s*\(at line (\d+), column (\d+)\)\s*$", str(e))
        end = re.search(r"^(.*?)\s*\(at end of document\)\s*$", str(e))
        if m:
            msg, line, col = m.group(1), int(m.group(2)), int(m.group(3))
        elif end:  # the document ended inside a value: point at its end
            lines = text.split("\n")
            msg, line, col = f"{end.group(1)} (the file ends inside a value: an unclosed [, {{ or quote?)", \
                len(lines), len(lines[-1]) + 1
        else:
            msg = str(e)
    where = f"{path}:{line}:{col}" if line is not None else str(path)
    return f"{where}: TOML syntax error: {msg}"
