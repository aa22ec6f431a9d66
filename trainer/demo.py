"""`tunedoc demo`: a complete QLoRA run with nothing to download and no GPU needed.

It builds a tiny Llama-architecture model on the spot (random weights, a byte-level BPE tokenizer trained on the
spot, a chat template; trainer/tiny.py), writes a self-identity data set (the assistant learns its name and maker,
like LLaMA-Factory's identity.json), and fine-tunes it with 4-bit nf4 QLoRA. Afterwards

    tunedoc chat <run> --prompt "Who are you?"

answers with the taught name. The model and data live in RUNS_DIR/.demo/ and are reused by later demos.

Why these settings (DEMO_SETS): the base model is random, so the adapter has to carry the whole answer. LoRA on
every linear layer plus lm_head (rank 16 on a 64-wide model is close to full rank), a high learning rate (the
adapters start at zero and have few steps), no dropout, packing, and micro-batches of whole packed rows.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from trainer.rundir import default_runs_dir

DEMO_PROFILE = "qlora-min"  # nf4 + double quant, the profile people use on small cards
DEMO_STEPS = 80
DEMO_SETS = [
    "quant=nf4",
    "lora_r=16",
    "lora_alpha=32",
    "lora_dropout=0.0",
    'lora_targets=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj","lm_head"]',
    "cutoff_len=256",
    "micro_batch=4",
    "grad_accum=1",
    "grad_ckpt=false",
    "lr=5e-3",
    "warmup=0.1",
    "scheduler=cosine",
    "packing=true",
    "save_every=20",
    "sample_every=20",
    "seed=0",
]
PROMPT = "Who are you?"


def demo_dir(runs_dir: str | os.PathLike | None) -> Path:
    return (Path(runs_dir) if runs_dir is not None else default_runs_dir()) / ".demo"


def prepare_demo(identity: str, maker: str, runs_dir: str | os.PathLike | None) -> tuple[Path, Path]:
    """(model_dir, data_file): the tiny model (built once, reused) and this identity's data set."""
    from trainer.tiny import build_tiny_model, write_identity_dataset

    base = demo_dir(runs_dir)
    base.mkdir(parents=True, exist_ok=True)
    model_dir = base / "tiny-llama"
    if not (model_dir / "config.json").is_file() or not any(model_dir.glob("*.safetensors")):
        build_tiny_model(model_dir)
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{identity}-{maker}").strip("-") or "identity"
    data = write_identity_dataset(base / f"identity-{slug}.jsonl", name=identity, maker=maker)
    return model_dir, Path(data)


def demo_sets(steps: int | None = None) -> list[str]:
    return [*DEMO_SETS, f"max_steps={steps or DEMO_STEPS}", f'sample_prompts=["{PROMPT}"]']


def start_demo(identity: str = "Tuna", maker: str = "tunedoc", runs_dir=None, steps: int | None = None,
               detach: bool = False):
    """Build the model and data and start the run; returns the launcher's RunHandle."""
    from trainer.launch import start_run

    model_dir, data = prepare_demo(identity, maker, runs_dir)
    name = "demo-" + re.sub(r"[^A-Za-z0-9_-]+", "-", identity).strip("-")
    return start_run(str(model_dir), str(data), DEMO_PROFILE, demo_sets(steps), runs_dir, name, "openai",
                     detach=detach)
