"""`tunedoc demo`: a complete QLoRA run with nothing to download and no GPU needed.

It builds a tiny Llama-architecture model on the spot (random weights, a byte-level BPE tokenizer trained on the
spot, a chat template; trainer/tiny.py), writes a self-identity data set (the assistant learns its name and maker,
like LLaMA-Factory's identity.json), and fine-tunes it with 4-bit nf4 QLoRA. Afterwards

    tunedoc chat <run> --prompt "Who are you?"

answers with the taught name. The run itself ends with a base-vs-tuned eval on identity questions it never saw
(config.json's `final_eval`, trainer/demo_eval.py), however it was started. The model and data live in
RUNS_DIR/.demo/ and are reused by later demos.

Why these settings (DEMO_SETS): the base model is random, so the adapter has to carry the whole answer. LoRA on
every linear layer plus lm_head (rank 16 on a 64-wide model is close to full rank), no dropout, packing, and
micro-batches of whole packed rows. The learning rate and step count are chosen to be watched: at 5e-3 the loss
collapses within ~60 steps (two seconds on 2 CPU cores: the screen would only ever show a finished run); at 6e-4 over
800 steps it falls steadily for ~30 s (7.0 -> 2.8 at step 100 -> 0.24 at 300 -> 0.02), the samples turn from noise
into the taught answer around step 200, and there is time to pause, stop or detach.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tunedoc.trainer.rundir import default_runs_dir

DEMO_PROFILE = "qlora-min"  # nf4 + double quant, the profile people use on small cards
DEMO_STEPS = 800
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
    "lr=6e-4",
    "warmup=0.05",
    "scheduler=cosine",
    "packing=true",
    "seed=0",
]
PROMPT = "Who are you?"


def demo_dir(runs_dir: str | os.PathLike | None) -> Path:
    return (Path(runs_dir) if runs_dir is not None else default_runs_dir()) / ".demo"


def prepare_demo(identity: str, maker: str, runs_dir: str | os.PathLike | None) -> tuple[Path, Path]:
    """(model_dir, data_file): the tiny model (built once, reused) and this identity's data set."""
    from tunedoc.trainer.tiny import build_tiny_model, write_identity_dataset

    base = demo_dir(runs_dir)
    base.mkdir(parents=True, exist_ok=True)
    model_dir = base / "tiny-llama"
    if not (model_dir / "config.json").is_file() or not any(model_dir.glob("*.safetensors")):
        build_tiny_model(model_dir)
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{identity}-{maker}").strip("-") or "identity"
    data = write_identity_dataset(base / f"identity-{slug}.jsonl", name=identity, maker=maker)
    return model_dir, Path(data)


def demo_sets(steps: int | None = None) -> list[str]:
    steps = steps or DEMO_STEPS  # a checkpoint every quarter, a sample every eighth of the run
    return [*DEMO_SETS, f"max_steps={steps}", f"save_every={max(1, steps // 4)}",
            f"sample_every={max(1, steps // 8)}", f'sample_prompts=["{PROMPT}"]']


def start_demo(identity: str = "Tuna", maker: str = "tunedoc", runs_dir=None, steps: int | None = None,
               detach: bool = False, nproc: int | None = None, strategy: str | None = None):
    """Build the model and data and start the run; returns the launcher's RunHandle. `nproc`: that many CPU
    processes through torchrun (gloo); `strategy`: ddp or fsdp for them (default auto: ddp)."""
    from tunedoc.trainer.demo_eval import final_eval_config
    from tunedoc.trainer.launch import plan_launch, start_run

    model_dir, data = prepare_demo(identity, maker, runs_dir)
    name = "demo-" + re.sub(r"[^A-Za-z0-9_-]+", "-", identity).strip("-")
    sets = demo_sets(steps) + ([f"strategy={strategy}"] if strategy else [])
    # the run ends with a base-vs-tuned eval on identity questions it never saw, whoever started it
    extra = {"final_eval": final_eval_config(demo_dir(runs_dir), identity, maker)}
    return start_run(str(model_dir), str(data), DEMO_PROFILE, sets, runs_dir, name, "openai",
                     detach=detach, launch=plan_launch(nproc=nproc) if nproc else None, extra=extra)
