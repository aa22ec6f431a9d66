"""Peak memory and time per step: tunedoc's defaults against Hugging Face Trainer + PEFT, same model, data, LoRA
and batch, on the CPU.

    .venv/bin/python bench/memory_diet.py [--vocab 151936] [--seq 4096] [--steps 3]

The model is a tiny Llama-architecture model (hidden 64, 2 layers) with a 150k vocabulary: the shape where the
logits, not the weights, are the memory (Qwen2.5's and Llama 3's vocabularies). One packed row of `--seq` tokens
per step (micro-batch 1, no accumulation), identity chat data, loss on the assistant tokens.

- tunedoc: the real recipe (trainer/recipe.py: setup(), then its training step) with the qlora-balanced profile
  (4-bit nf4-dq base, LoRA r 16 on all linear layers, dropout 0.05, gradient checkpointing on, loss_impl auto,
  which is the chunked loss on a CPU), cutoff_len = --seq, micro_batch 1, grad_accum 1.
- baseline: transformers' Trainer on a PEFT model loaded the same way (the same BitsAndBytesConfig,
  prepare_model_for_kbit_training, the same LoraConfig), gradient checkpointing (non-reentrant) on, AdamW,
  batch 1, fed the very rows tunedoc trained on. Its loss is transformers' own (the full logits in fp32).

Peak memory: the most bytes held at once by tensors allocated during the training steps, tracked per storage by
a TorchDispatchMode with weak references (as torch.distributed._tools.mem_tracker does); the model's weights,
loaded before, are not in it. This is what the steps add, not RSS (which the allocator and the other processes
of a shared box blur). Time per step: the median of the steps after the first (one warm-up step each; tunedoc's
setup already ran one forward/backward, its memory fit). Each side runs in its own process, one after the other.
Goal: peak <= 0.5x the baseline, time <= 1.1x. The conditions (cores, load average, threads) are printed with the
numbers: on a shared 2-core box the times move with the neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class LiveBytes:
    """Bytes of CPU tensor storages created inside the context and still alive; `peak` is the most at once."""

    def __init__(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_flatten

        tracker = self
        self.live: dict[int, int] = {}
        self.current = self.peak = 0

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for t in tree_flatten(out)[0]:
                    if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                        tracker._add(t.untyped_storage())
                return out

        self.mode = Mode()

    def _add(self, st) -> None:
        key = id(st)
        n = st.nbytes()
        if key in self.live or n == 0:
            return
        self.live[key] = n
        self.current += n
        self.peak = max(self.peak, self.current)
        weakref.finalize(st, self._free, key)

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)


def _profile(seq: int, steps: int):
    from tunedoc.profiles.profile import load_profile

    return load_profile("qlora-balanced").with_overrides([
        f"cutoff_len={seq}", "micro_batch=1", "grad_accum=1", f"max_steps={steps}", "eval_split=0",
        "sample_every=0", "save_every=0"])


def side_tunedoc(model: Path, data: Path, work: Path, seq: int, steps: int) -> dict:
    from tunedoc.trainer.recipe import Recipe
    from tunedoc.trainer.rundir import CONFIG, write_json

    run_dir = work / "tunedoc-run"
    run_dir.mkdir(parents=True, exist_ok=True)
    prof = _profile(seq, steps + 1)
    write_json(run_dir / CONFIG, {"model": str(model), "data": str(data), "format": "auto", "profile": prof.to_dict()})
    r = Recipe(run_dir, echo=False)
    r.setup()
    rows = [r._step_batches(s)[0] for s in range(steps + 1)]
    (work / "rows.json").write_text(json.dumps(rows))  # the baseline trains on the very same rows
    times, losses = [], []
    with LiveBytes() as mem:
        for s in range(steps + 1):
            t0 = time.perf_counter()
            loss, *_ = r._train_step(s)
            times.append(time.perf_counter() - t0)
            losses.append(loss)
    import torch

    return {"peak_bytes": mem.peak, "step_s": times, "loss": losses, "loss_impl": r.loss_impl,
            "grad_ckpt": r.mem.grad_ckpt, "threads": torch.get_num_threads(),
            "tokens": [sum(len(x["input_ids"]) for x in b) for b in rows]}


def side_hf(model: Path, data: Path, work: Path, seq: int, steps: int) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    from tunedoc.trainer import data as D
    from tunedoc.trainer.recipe import quantization_config

    p = _profile(seq, steps + 1)
    rows = [b for b in json.loads((work / "rows.json").read_text())]
    m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32,
                                             quantization_config=quantization_config(p.quant, torch.float32),
                                             device_map={"": "cpu"})
    m.config.use_cache = False
    m = prepare_model_for_kbit_training(m, use_gradient_checkpointing=True,
                                        gradient_checkpointing_kwargs={"use_reentrant": False})
    m = get_peft_model(m, LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, lora_dropout=p.lora_dropout,
                                     target_modules="all-linear", bias="none", task_type="CAUSAL_LM"))
    for mod in m.modules():  # as the recipe does (trainer/recipe.py)
        if hasattr(mod, "support_avx512bf16_for_cpu"):
            mod.support_avx512bf16_for_cpu = False
    pad = 0

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    times, losses = [], []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - self.t0)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append(logs["loss"])

    args = TrainingArguments(
        output_dir=str(work / "hf-out"), per_device_train_batch_size=1, gradient_accumulation_steps=1,
        max_steps=steps + 1, learning_rate=p.lr, lr_scheduler_type=p.scheduler, warmup_steps=p.warmup,  # a float < 1 is a ratio in transformers 5
        max_grad_norm=1.0, weight_decay=0.0, optim="adamw_torch", gradient_checkpointing=True,
        gradient_checkpointing_kwargs={"use_reentrant": False}, use_cpu=True, report_to=[], save_strategy="no",
        logging_steps=1, dataloader_num_workers=0, remove_unused_columns=False, disable_tqdm=True,
        seed=p.seed)
    trainer = Trainer(model=m, args=args, train_dataset=Rows(),
                      data_collator=lambda b: D.collate([x for r in b for x in r], pad, True),
                      callbacks=[Clock()])
    with LiveBytes() as mem:
        trainer.train()
    return {"peak_bytes": mem.peak, "step_s": times, "loss": losses, "threads": torch.get_num_threads()}


def _child(args) -> int:
    from tunedoc.trainer.threads import configure

    configure()  # the recipe's thread plan (trainer/threads.py), the same for both sides
    import transformers

    transformers.utils.logging.set_verbosity_error()
    fn = side_tunedoc if args.side == "tunedoc" else side_hf
    out = fn(Path(args.model), Path(args.data), Path(args.work), args.seq, args.steps)
    print("RESULT " + json.dumps(out), flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab", type=int, default=151936, help="vocabulary size (Qwen2.5: 151936)")
    ap.add_argument("--seq", type=int, default=4096, help="tokens per step (one packed row)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per side, after one warm-up step")
    ap.add_argument("--side", choices=("tunedoc", "hf"), help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.side:
        return _child(args)

    from tunedoc.trainer.tiny import build_tiny_model, write_identity_dataset

    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="memory-diet-") as tmp:
        work = Path(tmp)
        model = build_tiny_model(work / "tiny-150k", vocab_size=args.vocab)
        # enough identity chats to pack steps + 2 rows of seq tokens (~35 tokens a chat)
        data = write_identity_dataset(work / "identity.jsonl", n=max(200, (args.steps + 3) * args.seq // 30))
        load = os.getloadavg()
        results = {}
        for side in ("tunedoc", "hf"):
            cmd = [sys.executable, __file__, "--side", side, "--model", str(model), "--data", str(data),
                   "--work", str(work), "--seq", str(args.seq), "--steps", str(args.steps)]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
            if out.returncode != 0 or line is None:
                print(f"{side} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
                return 1
            results[side] = json.loads(line[len("RESULT "):])
        load_after = os.getloadavg()

    t, h = results["tunedoc"], results["hf"]
    t_step = statistics.median(t["step_s"][1:])
    h_step = statistics.median(h["step_s"][1:])
    mem_ratio = t["peak_bytes"] / h["peak_bytes"]
    time_ratio = t_step / h_step
    gib = 2**30
    print(f"model: tiny Llama (hidden 64, 2 layers), vocabulary {args.vocab}; {args.seq} tokens per step "
          f"(micro-batch 1, tokens per row {t['tokens'][0]}); qlora-balanced: nf4-dq, LoRA r 16 all-linear, "
          f"checkpointing")
    print(f"conditions: {os.cpu_count()} cores, torch threads {t['threads']}/{h['threads']}, load average "
          f"{load[0]:.2f} before, {load_after[0]:.2f} after; {args.steps} timed steps per side after one warm-up")
    print(f"{'':<28}{'peak tracked':>14}{'time/step':>12}  losses")
    print(f"{'tunedoc (loss ' + t['loss_impl'] + ')':<28}{t['peak_bytes'] / gib:>12.2f}G {t_step:>10.2f}s  "
          + " ".join(f"{x:.3f}" for x in t["loss"]))
    print(f"{'HF Trainer + PEFT':<28}{h['peak_bytes'] / gib:>12.2f}G {h_step:>10.2f}s  "
          + " ".join(f"{x:.3f}" for x in h["loss"]))
    print(f"ratio tunedoc/HF: peak memory {mem_ratio:.2f}x (goal <= 0.5x), time per step {time_ratio:.2f}x "
          f"(goal <= 1.1x); total {time.time() - t_start:.0f} s")
    return 0 if mem_ratio <= 0.5 and time_ratio <= 1.1 else 3


if __name__ == "__main__":
    sys.exit(main())
