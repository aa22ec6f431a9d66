"""LLaMA-Factory SFT configs in and out: one table maps its YAML keys to tunedoc's run (model, data) and profile.

    read_config(path) -> Imported        # the model, data sets and profile fields a config becomes, and every key
                                          # that is not used, by name, with what happens to it
    Imported.profile(sets) -> Profile     # with --set overrides on top
    to_config(run_config) -> (yaml text, dataset_info entry)   # tunedoc export RUN --llamafactory

LLaMA-Factory's argument reference: https://llamafactory.readthedocs.io/en/latest/advanced/arguments.html
(the dataclasses in src/llamafactory/hparams/{model,data,finetuning,training}_args.py and transformers'
Seq2SeqTrainingArguments). A key absent from a config takes LLaMA-Factory's default, not tunedoc's, so the run is
the one LLaMA-Factory would have trained. No torch here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

DOCS = "https://llamafactory.readthedocs.io/en/latest/advanced/arguments.html"
DATA_DOCS = "https://github.com/hiyouga/LLaMA-Factory/blob/main/data/README.md"


class ConfigError(ValueError):
    """The config cannot be used: a YAML syntax error (file:line:col) or keys that would change what is trained."""


def _lora_target(v: Any) -> Any:
    if isinstance(v, str) and v.strip() == "all":
        return "all-linear"
    return [t.strip() for t in (v.split(",") if isinstance(v, str) else v) if str(t).strip()]


def _lora_target_out(v: Any) -> str:
    return "all" if v == "all-linear" else ",".join(v)


SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant",
              "constant_with_warmup": "constant_with_warmup"}
OPTIMS = {"adamw_torch": "adamw", "adamw_hf": "adamw", "adamw_torch_fused": "adamw", "adamw_8bit": "adamw-8bit",
          "adamw_bnb_8bit": "adamw-8bit", "paged_adamw_8bit": "paged-adamw-8bit"}
OPTIMS_OUT = {"adamw": "adamw_torch", "adamw-8bit": "adamw_8bit", "paged-adamw-8bit": "paged_adamw_8bit"}


@dataclass(frozen=True)
class Row:
    """One LLaMA-Factory key: the tunedoc field it sets, how its value converts each way, and LLaMA-Factory's
    default (what an absent key means)."""

    key: str
    field: str  # a Profile field, or run-level: model, dataset, dataset_dir, max_samples
    default: Any
    into: Callable[[Any], Any] = lambda v: v
    out: Callable[[Any], Any] = lambda v: v


# The mapping. Keys read together (quantization, precision, warmup, stage, finetuning_type) are in read_config.
TABLE: list[Row] = [
    Row("model_name_or_path", "model", None),
    Row("dataset", "dataset", None, lambda v: [d.strip() for d in (v.split(",") if isinstance(v, str) else v)
                                               if str(d).strip()], lambda v: ",".join(v)),
    Row("dataset_dir", "dataset_dir", "data"),
    Row("max_samples", "max_samples", None, int),
    Row("cutoff_len", "cutoff_len", 2048, int),
    Row("lora_rank", "lora_r", 8, int),
    Row("lora_alpha", "lora_alpha", None, int),  # None: lora_rank * 2
    Row("lora_dropout", "lora_dropout", 0.0, float),
    Row("lora_target", "lora_targets", "all", _lora_target, _lora_target_out),
    Row("per_device_train_batch_size", "micro_batch", 8, int),
    Row("gradient_accumulation_steps", "grad_accum", 1, int),
    Row("learning_rate", "lr", 5e-5, float),
    Row("num_train_epochs", "epochs", 3.0, float),
    Row("max_steps", "max_steps", -1, int),
    Row("lr_scheduler_type", "scheduler", "linear", lambda v: SCHEDULERS.get(v, v)),
    Row("packing", "packing", False, bool),
    Row("val_size", "eval_split", 0.0, float),
    Row("save_steps", "save_every", 500, int),
    Row("seed", "seed", 42, int),
    Row("optim", "optimizer", "adamw_torch", lambda v: OPTIMS.get(v, v), lambda v: OPTIMS_OUT.get(v, v)),
]
BY_KEY = {r.key: r for r in TABLE}
# read together with others in read_config
COMBINED = ("template", "stage", "finetuning_type", "quantization_bit", "quantization_method", "quantization_type",
            "double_quantization", "bf16", "fp16", "pure_bf16", "warmup_ratio", "warmup_steps",
            "disable_gradient_checkpointing")

# `template:` names LLaMA-Factory's prompt format (src/llamafactory/data/template.py,
# https://github.com/hiyouga/LLaMA-Factory/blob/main/src/llamafactory/data/template.py). tunedoc formats with the
# model's own chat template, so a named template is only right when it is the model's format: each name here has the
# marker its prompts share with the chat template of the models it is for, checked against the model's template
# before training (template_problem). Without `template:`, LLaMA-Factory parses the tokenizer's chat template, as
# tunedoc does.
TEMPLATES = {
    "qwen": "<|im_start|>", "qwen3": "<|im_start|>", "qwen3_nothink": "<|im_start|>", "chatml": "<|im_start|>",
    "yi": "<|im_start|>", "phi4": "<|im_start|>", "llama3": "<|start_header_id|>", "llama4": "<|header_start|>",
    "mistral": "[INST]", "ministral": "[INST]", "llama2": "[INST]", "gemma": "<start_of_turn>",
    "gemma2": "<start_of_turn>", "gemma3": "<start_of_turn>", "phi": "<|user|>", "glm4": "[gMASK]",
    "deepseek3": "<｜User｜>", "deepseekr1": "<｜User｜>",
}
# LLaMA-Factory formats that are no model's chat template: training in them needs LLaMA-Factory
FOREIGN = {
    "alpaca": "'### Instruction:\\n...\\n\\n### Response:\\n'", "default": "'Human: ...\\nAssistant:'",
    "empty": "the bare text, with no role markers", "vicuna": "'USER: ... ASSISTANT:'",
}


def template_problem(name: str | None, chat_template: str | None, model: str | None = None) -> str | None:
    """One sentence when training with the model's own chat template would not be LLaMA-Factory's `template: name`
    (None: it is, or no template was named). `chat_template` is the model's (None: the model has none); "" when
    it is not known yet (only the name is checked)."""
    if not name:
        return None
    fix = ("remove `template:` (LLaMA-Factory then reads the model's chat template too, the format tunedoc trains "
           "in) or train this config with LLaMA-Factory")
    if name in FOREIGN:
        return (f"template: {name}: LLaMA-Factory would format every sample as {FOREIGN[name]}, but tunedoc formats "
                f"with the model's own chat template, and an adapter trained in one format and used in another "
                f"answers badly; {fix}")
    if name not in TEMPLATES:
        return (f"template: {name}: tunedoc cannot tell whether this LLaMA-Factory template is the model's own chat "
                f"format (it checks {', '.join(sorted(TEMPLATES))}); {fix}")
    if chat_template == "":
        return None
    who = model or "the model"
    if chat_template is None:
        return (f"template: {name}: {who} has no chat template (a base model?), so tunedoc cannot format its data "
                f"as LLaMA-Factory's {name} template does; use the instruct/chat model, or train with LLaMA-Factory")
    if TEMPLATES[name] not in chat_template:
        return (f"template: {name}: LLaMA-Factory's {name} prompts use {TEMPLATES[name]}, which {who}'s chat "
                f"template does not: tunedoc trains in the model's own format, so the two would differ; {fix}")
    return None


# keys that do not change what is trained: ignored, with the reason a user sees
IGNORED = {
    "output_dir": "a tunedoc run lives in runs/<id>/ (--name names it; `tunedoc export` writes the adapter)",
    "logging_steps": "tunedoc logs every step",
    "do_train": "training is what `tunedoc train` does",
    "trust_remote_code": "tunedoc loads models without remote code",
    "preprocessing_num_workers": "tokenizing runs in the trainer process",
    "dataloader_num_workers": "batches are built in the trainer process",
    "overwrite_output_dir": "every run gets a new directory",
    "overwrite_cache": "tunedoc keeps no tokenized cache",
    "save_only_model": "tunedoc checkpoints keep what a resume needs",
    "report_to": "tunedoc writes events.jsonl (`tunedoc watch`)",
    "plot_loss": "the Train screen and `tunedoc compare --html` plot the loss",
    "ddp_timeout": "several GPUs: tunedoc train --gpus",
    "deepspeed": "several GPUs: tunedoc train --gpus (data-parallel, each GPU holds the model)",
    "flash_attn": "attention is sdpa",
    "per_device_eval_batch_size": "evaluation uses the training micro-batch",
    "eval_strategy": "with val_size, the held-out loss is logged",
    "eval_steps": "with val_size, the held-out loss is logged",
    "save_strategy": "save_steps sets how often",
    "save_total_limit": "tunedoc keeps its checkpoints",
    "run_name": "--name names a run",
    "logging_dir": "events.jsonl is the log",
    "resume_from_checkpoint": "tunedoc train --resume RUN continues a run",
    "enable_liger_kernel": "profile loss_impl=fused uses Liger-Kernel",
    "quantization_device_map": "the model is loaded on the training device",
    "upcast_layernorm": "norms stay in the compute dtype",
}
# keys that change the result when set away from their neutral value: an error, with what to do
NEUTRAL = {
    "use_dora": (False, "DoRA is not supported"), "use_rslora": (False, "rank-stabilized LoRA is not supported"),
    "pissa_init": (False, "PiSSA init is not supported"), "loraplus_lr_ratio": (None, "LoRA+ is not supported"),
    "neftune_noise_alpha": (None, "NEFTune is not supported"), "additional_target": (None, "extra trainable "
                                                                                          "modules are not supported"),
    "train_on_prompt": (False, "tunedoc trains on answers only"),
    "mask_history": (False, "tunedoc trains on every answer of a conversation"),
    "rope_scaling": (None, "RoPE scaling is not supported"), "use_galore": (False, "GaLore is not supported"),
    "use_badam": (False, "BAdam is not supported"), "use_apollo": (False, "APOLLO is not supported"),
    "use_unsloth": (False, "Unsloth is not used"), "weight_decay": (0.0, "weight decay is not supported"),
    "mix_strategy": ("concat", "data sets are concatenated"), "streaming": (False, "data is read whole"),
    "do_predict": (False, "`tunedoc eval RUN` scores a run"), "eval_dataset": (None, "evaluation holds out "
                                                                                   "val_size of the training data"),
    "tokenized_path": (None, "tunedoc tokenizes the data itself"),
    "image_max_pixels": (None, "tunedoc trains text-only models"),
    "freeze_vision_tower": (True, "tunedoc trains text-only models"),
}


@dataclass
class Imported:
    """What a LLaMA-Factory config becomes."""

    path: Path
    model: str | None = None
    dataset: list[str] = field(default_factory=list)
    dataset_dir: str = "data"
    max_samples: int | None = None
    fields: dict = field(default_factory=dict)  # Profile fields, every one the config decides
    origin: dict = field(default_factory=dict)  # Profile field -> the LLaMA-Factory key(s) it came from
    ignored: dict = field(default_factory=dict)  # key -> why it does not matter
    unknown: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    template: str | None = None  # LLaMA-Factory's template name; checked against the model's chat template
    template_error: str | None = None  # the name alone says training would not match it (train refuses)

    def data_dir(self) -> Path | None:
        """dataset_dir as LLaMA-Factory resolves it (from the working directory: it runs from its repository
        root), else from the config's folder and the folders above it (examples/train_lora/x.yaml -> data/)."""
        rel = Path(self.dataset_dir).expanduser()
        if rel.is_absolute():
            return rel if rel.is_dir() else None
        for base in (Path.cwd(), *self.path.resolve().parents):
            if (base / rel / "dataset_info.json").is_file():
                return base / rel
        return None

    def profile(self, sets: list[str] | None = None):
        """The Profile (named after the config file), with `--set` overrides on top. Raises ProfileError."""
        from tunedoc.profiles.profile import Profile

        prof = Profile.from_dict({"name": self.path.stem, "description": f"from LLaMA-Factory {self.path.name}",
                                  **self.fields})
        if sets:
            prof = prof.with_overrides(sets)
            prof.name = self.path.stem
        return prof

    def report(self) -> list[str]:
        """Lines for stderr: where each field came from, and the keys not used."""
        lines = [f"{self.path.name} (LLaMA-Factory) became:", f"  model = {self.model}",
                 f"  data = {self.dataset_dir} [{', '.join(self.dataset)}]"
                 + (f", at most {self.max_samples} samples each" if self.max_samples else "")]
        if self.template:
            lines.append(f"  template = {self.template}  # "
                         + (self.template_error or "the model's own chat template, checked to be this format"))
        for k, v in self.fields.items():
            lines.append(f"  {k} = {_show(v)}  # {self.origin.get(k, 'LLaMA-Factory default')}")
        for k, why in self.ignored.items():
            lines.append(f"  ignored: {k}: {why}")
        for k in self.unknown:
            lines.append(f"  ignored: {k}: not a key tunedoc knows ({DOCS})")
        return lines


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


def load_yaml(path: str | os.PathLike) -> dict:
    """The YAML mapping; ConfigError with file:line:col for a syntax error."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"config {str(p)!r} does not exist") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        what = " ".join(x for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x) or str(e)
        raise ConfigError(f"{where}: bad YAML: {what}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}:1:1: expected a mapping of LLaMA-Factory keys, found {type(data).__name__}")
    return data


def read_config(path: str | os.PathLike) -> Imported:
    """A LLaMA-Factory SFT config -> Imported. Raises ConfigError (YAML syntax, or keys that change the result:
    every such key listed), FileNotFoundError."""
    p = Path(path)
    cfg = load_yaml(p)
    imp = Imported(path=p)
    errors: list[str] = []

    stage = cfg.get("stage", "sft")
    if stage != "sft":
        errors.append(f"stage: {stage}: tunedoc trains supervised fine-tuning (stage: sft) only")
    ftype = cfg.get("finetuning_type", "lora")
    if ftype != "lora":
        errors.append(f"finetuning_type: {ftype}: tunedoc trains LoRA adapters (finetuning_type: lora) only; "
                      "full and freeze tuning need LLaMA-Factory")

    values: dict = {}
    for row in TABLE:
        raw = cfg.get(row.key, row.default)
        if raw is None:
            continue
        try:
            values[row.field] = row.into(raw)
        except (TypeError, ValueError):
            errors.append(f"{row.key}: {raw!r} is not a valid value")
            continue
        if row.key in cfg:
            imp.origin[row.field] = row.key
    imp.model = values.pop("model", None)
    imp.dataset = values.pop("dataset", [])
    imp.dataset_dir = str(values.pop("dataset_dir", "data"))
    imp.max_samples = values.pop("max_samples", None)
    if "lora_alpha" not in values and "lora_r" in values:
        values["lora_alpha"] = values["lora_r"] * 2
        imp.origin["lora_alpha"] = "lora_rank x 2 (LLaMA-Factory's default)"
    if values.get("scheduler") not in SCHEDULERS.values():
        errors.append(f"lr_scheduler_type: {values.get('scheduler')}: tunedoc schedules {', '.join(SCHEDULERS)}")
    if values.get("optimizer") not in OPTIMS.values():
        errors.append(f"optim: {cfg.get('optim')}: tunedoc's optimizers are {', '.join(OPTIMS)}")
    if isinstance(cfg.get("val_size"), int) and not isinstance(cfg.get("val_size"), bool) and cfg["val_size"] >= 1:
        errors.append(f"val_size: {cfg['val_size']}: a number of samples; tunedoc holds out a fraction (0.1)")

    # quantization: bitsandbytes 4-bit (nf4, double quantization by default) or 8-bit, else 16-bit LoRA
    bits = cfg.get("quantization_bit")
    method = cfg.get("quantization_method", "bnb")
    if bits is None:
        values["quant"] = "none"
    elif method != "bnb":
        errors.append(f"quantization_method: {method}: tunedoc quantizes with bitsandbytes (bnb) only")
    elif int(bits) == 4:
        qtype = cfg.get("quantization_type", "nf4")
        if qtype != "nf4":
            errors.append(f"quantization_type: {qtype}: tunedoc's 4-bit is nf4")
        values["quant"] = "nf4-dq" if cfg.get("double_quantization", True) else "nf4"
    elif int(bits) == 8:
        values["quant"] = "int8"
    else:
        errors.append(f"quantization_bit: {bits}: bitsandbytes quantizes to 4 or 8 bits")
    imp.origin["quant"] = "quantization_bit" if bits is not None else "no quantization_bit: 16-bit LoRA"

    # precision: bf16/fp16 flags; neither means fp32 in LLaMA-Factory
    if cfg.get("bf16") or cfg.get("pure_bf16"):
        values["precision"] = "bf16"
    elif cfg.get("fp16"):
        values["precision"] = "fp16"
    else:
        values["precision"] = "fp32"
    imp.origin["precision"] = next((k for k in ("bf16", "pure_bf16", "fp16") if cfg.get(k)),
                                   "neither bf16 nor fp16: fp32, as LLaMA-Factory")
    if cfg.get("pure_bf16"):
        imp.ignored["pure_bf16"] = "trained as bf16 with the LoRA weights in fp32"

    # warmup: a ratio, or steps (which win in transformers)
    if cfg.get("warmup_steps"):
        values["warmup"] = float(int(cfg["warmup_steps"]))
        imp.origin["warmup"] = "warmup_steps"
        if values["warmup"] < 1:
            values["warmup"] = 0.0
    else:
        values["warmup"] = float(cfg.get("warmup_ratio", 0.0))
        if "warmup_ratio" in cfg:
            imp.origin["warmup"] = "warmup_ratio"
        if values["warmup"] >= 1:
            errors.append(f"warmup_ratio: {cfg['warmup_ratio']}: a fraction below 1")

    if cfg.get("template"):
        imp.template = str(cfg["template"])
        imp.template_error = template_problem(imp.template, "")

    values["grad_ckpt"] = not cfg.get("disable_gradient_checkpointing", False)
    if "disable_gradient_checkpointing" in cfg:
        imp.origin["grad_ckpt"] = "disable_gradient_checkpointing"

    for key, value in cfg.items():
        if key in BY_KEY or key in COMBINED:
            continue
        if key in IGNORED:
            imp.ignored[key] = IGNORED[key]
        elif key in NEUTRAL:
            neutral, why = NEUTRAL[key]
            if value == neutral or (neutral is None and value in (None, "", 0)) or (neutral is False and not value):
                imp.ignored[key] = f"{value!r} is what tunedoc does"
            else:
                errors.append(f"{key}: {value!r}: {why}")
        else:
            imp.unknown.append(key)
    imp.fields = values
    if "dataset" not in cfg:
        errors.append("dataset: missing; name the data sets of dataset_info.json (dataset: identity,alpaca_en_demo), "
                      f"or pass --data ({DATA_DOCS})")
    imp.errors = errors
    return imp


# ------------------------------------------------------------------------------------------------------------------
# out: a run's config.json -> LLaMA-Factory YAML


def to_config(run_config: dict, dataset_name: str | None = None) -> tuple[str, dict]:
    """(YAML text, dataset_info.json entries) for a tunedoc run, so LLaMA-Factory trains the same thing.

    A run made from a LLaMA-Factory config (or --dataset) keeps its data set names and dataset_dir; otherwise the
    run's data file becomes a dataset_info.json entry named `dataset_name`."""
    from tunedoc.profiles.profile import Profile

    prof = Profile.from_dict(run_config.get("profile") or {})
    source = run_config.get("llamafactory") or {}
    lines = ["# written by tunedoc export --llamafactory: llamafactory-cli train this_file.yaml",
             f"# keys: {DOCS}", "### model", f"model_name_or_path: {run_config.get('model')}"]
    if prof.quant != "none":
        lines += [f"quantization_bit: {8 if prof.quant == 'int8' else 4}", "quantization_method: bnb"]
        if prof.quant == "nf4":
            lines.append("double_quantization: false")
    if source.get("template"):
        lines.append(f"template: {source['template']}")
    else:
        lines.append("# no template: LLaMA-Factory reads the model's own chat template, the format tunedoc trained in")
    lines += ["", "### method", "stage: sft", "do_train: true", "finetuning_type: lora"]
    entries: dict = {}
    if source.get("dataset"):
        dataset, dataset_dir = ",".join(source["dataset"]), source.get("dataset_dir") or "data"
    else:
        name = dataset_name or "tunedoc_data"
        data = str(run_config.get("data") or "")
        entries[name] = _dataset_entry(data, run_config.get("format") or "auto")
        dataset, dataset_dir = name, "."
    values = {r.field: getattr(prof, r.field) for r in TABLE if hasattr(prof, r.field)}
    out = {"lora_rank": values["lora_r"], "lora_alpha": values["lora_alpha"], "lora_dropout": values["lora_dropout"],
           "lora_target": _lora_target_out(prof.lora_targets)}
    lines += [f"{k}: {_yaml(v)}" for k, v in out.items()]
    if not getattr(prof, "checkpointing", prof.grad_ckpt):
        lines.append("disable_gradient_checkpointing: true")
    lines += ["", "### dataset", f"dataset: {dataset}", f"dataset_dir: {dataset_dir}", f"cutoff_len: {prof.cutoff_len}"]
    if source.get("max_samples"):
        lines.append(f"max_samples: {source['max_samples']}")
    lines += [f"packing: {_yaml(prof.packing)}", "", "### output",
              f"output_dir: saves/{run_config.get('run_id') or 'tunedoc'}", f"save_steps: {prof.save_every or 500}",
              "", "### train", f"per_device_train_batch_size: {prof.micro_batch}",
              f"gradient_accumulation_steps: {prof.grad_accum}", f"learning_rate: {prof.lr:g}",
              f"num_train_epochs: {prof.epochs:g}"]
    if prof.max_steps > 0:
        lines.append(f"max_steps: {prof.max_steps}")
    lines.append(f"lr_scheduler_type: {prof.scheduler}")
    lines.append(f"warmup_steps: {int(prof.warmup)}" if prof.warmup >= 1 else f"warmup_ratio: {prof.warmup:g}")
    if prof.precision in ("bf16", "fp16"):
        lines.append(f"{prof.precision}: true")
    elif prof.precision == "auto":
        lines.append("bf16: true  # tunedoc's precision auto: bf16 on Ampere and newer, else use fp16: true")
    lines += [f"optim: {OPTIMS_OUT.get(prof.optimizer, prof.optimizer)}", f"seed: {prof.seed}"]
    if prof.eval_split > 0:
        lines.append(f"val_size: {prof.eval_split:g}")
    return "\n".join(lines) + "\n", entries


def _dataset_entry(data: str, fmt: str) -> dict:
    """A dataset_info.json entry for a tunedoc data file, in the format its records have."""
    if fmt == "auto":
        from tunedoc.trainer.data.formats import detect_format, read_records

        records = read_records(Path(data), []) if Path(data).is_file() else []
        fmt = next((f for _, r in records[:20] if (f := detect_format(r))), "openai")
    if fmt == "alpaca":
        return {"file_name": data}
    if fmt == "sharegpt":
        return {"file_name": data, "formatting": "sharegpt", "columns": {"messages": "conversations",
                                                                         "system": "system", "tools": "tools"}}
    return {"file_name": data, "formatting": "sharegpt",
            "columns": {"messages": "messages", "tools": "tools"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                     "system_tag": "system", "observation_tag": "tool"}}


def _yaml(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def yaml_keys(changes: dict) -> dict:
    """tunedoc profile changes (from `tunedoc fit`) -> the LLaMA-Factory keys that make the same change; a
    change LLaMA-Factory has no key for maps to None."""
    by_field = {r.field: r for r in TABLE}
    out: dict = {}
    for k, v in changes.items():
        if k == "quant":
            out["quantization_bit"] = None if v == "none" else (8 if v == "int8" else 4)
            if v == "nf4":
                out["double_quantization"] = False
        elif k == "grad_ckpt":
            out["disable_gradient_checkpointing"] = v in (False, "off")
            if v == "offload":
                out["# activation offload"] = None
        elif k == "precision":
            out["bf16" if v == "bf16" else "fp16"] = True
        elif k == "warmup":
            out["warmup_steps" if v >= 1 else "warmup_ratio"] = int(v) if v >= 1 else v
        elif k in by_field:
            out[by_field[k].key] = by_field[k].out(v)
        else:
            out[f"# {k}"] = v
    return out
