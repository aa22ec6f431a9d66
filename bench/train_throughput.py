"""tunedoc's training vs the way tutorials write it, on the same tiny model, data and epochs, in the same run.

    .venv/bin/python bench/train_throughput.py [--samples 320] [--epochs 1] [--cutoff 512]

The data set has realistic, mixed sample lengths (log-normal: most replies short, a long tail), as chat data has.
- tunedoc: `tunedoc train` (its own process, the real CLI): packing into full cutoff-length rows, micro-batch 1
  packed row, assistant-only loss.
- baseline: Hugging Face `Trainer` with a LoRA model, every sample padded to max_length=cutoff, no packing, a
  batch of as many samples as a packed row holds on average (so both take the same number of optimizer steps
  over the same samples), the same assistant-only labels, learning rate, schedule and epochs.
Both use LoRA on all linear layers in fp32 (CPU) or bf16 (GPU) with the same rank. Wall time per epoch counts
training only (not model loading). Final loss: both trained adapters are evaluated the same way on the same
held-out samples (mean token loss on assistant tokens), so packing cannot flatter its own loss number.
Prints both times, the ratio (goal: <= 0.5) and both losses (goal: tunedoc's no worse).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = ("the a model learns data train token batch memory loss step quant adapter rank layer weight gpu cpu "
         "fast slow small large fine tune answer question name helpful short long text write read run").split()


def make_data(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for _ in range(n):
            q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) + "?"
            n_words = max(3, min(300, int(rng.lognormvariate(3.2, 0.9))))  # median ~25 words, tail to 300
            a = " ".join(rng.choice(WORDS) for _ in range(n_words)) + "."
            f.write(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
                    + "\n")


def run_tunedoc(model: Path, data: Path, runs: Path, args) -> tuple[float, Path]:
    sets = [f"epochs={args.epochs}", f"cutoff_len={args.cutoff}", "micro_batch=1", "grad_accum=1", "quant=none",
            "packing=true", "grad_ckpt=false", f"lr={args.lr}", "lora_r=8", "lora_alpha=16", "lora_dropout=0.0",
            "warmup=0.03", "scheduler=cosine", "optimizer=adamw", "seed=0"]
    cmd = [sys.executable, "-m", "tunedoc", "train", "--model", str(model), "--data", str(data), "--profile",
           "qlora-min", "--runs-dir", str(runs), "--json"] + [x for s in sets for x in ("--set", s)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"tunedoc train failed:\n{out.stderr[-3000:]}")
    done = json.loads(out.stdout.strip().splitlines()[-1])
    return float(done["elapsed_s"]), Path(done["adapter"])


def run_baseline(model_dir: Path, samples: list[dict], out_dir: Path, args, pad_id: int, batch: int):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    class Padded(torch.utils.data.Dataset):
        def __len__(self):
            return len(samples)

        def __getitem__(self, i):
            s = samples[i]
            n = len(s["input_ids"])
            pad = args.cutoff - n
            return {"input_ids": torch.tensor(s["input_ids"] + [pad_id] * pad),
                    "attention_mask": torch.tensor([1] * n + [0] * pad),
                    "labels": torch.tensor(s["labels"] + [-100] * pad)}

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    targs = TrainingArguments(output_dir=str(out_dir), per_device_train_batch_size=batch, num_train_epochs=args.epochs,
                              learning_rate=args.lr, lr_scheduler_type="cosine", warmup_steps=0.03,
                              logging_steps=10, save_strategy="no", report_to="none", seed=0, use_cpu=not torch.cuda.is_available(),
                              dataloader_num_workers=0, disable_tqdm=True, optim="adamw_torch", weight_decay=0.0)
    trainer = Trainer(model=model, args=targs, train_dataset=Padded())
    t0 = time.time()
    trainer.train()
    return time.time() - t0, model


def eval_loss(model, rows: list[dict], pad_id: int) -> float:
    import torch
    import torch.nn.functional as F

    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for r in rows:
            ids = torch.tensor([r["input_ids"]])
            labels = torch.tensor([r["labels"]])
            logits = model(input_ids=ids).logits[:, :-1].float()
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                     ignore_index=-100, reduction="sum").item()
            n += int((labels[:, 1:] != -100).sum())
    return total / max(n, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=320)
    ap.add_argument("--eval-samples", type=int, default=40)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--cutoff", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunedoc.trainer import data as D
    from tunedoc.trainer.tiny import build_tiny_model

    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory(prefix="tunedoc-bench-") as tmp:
        tmp = Path(tmp)
        words = " ".join(WORDS)
        model_dir = build_tiny_model(tmp / "model", corpus=[words] * 20)
        make_data(tmp / "train.jsonl", args.samples, seed=1)
        make_data(tmp / "eval.jsonl", args.eval_samples, seed=2)
        tok = AutoTokenizer.from_pretrained(model_dir)
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        train = D.build_samples(D.load_conversations(tmp / "train.jsonl"), tok, args.cutoff)
        held = D.build_samples(D.load_conversations(tmp / "eval.jsonl"), tok, args.cutoff)
        lengths = sorted(len(s["input_ids"]) for s in train)
        real = sum(lengths)
        print(f"data: {len(train)} samples, tokens per sample median {lengths[len(lengths) // 2]}, "
              f"max {lengths[-1]}; padding to {args.cutoff} wastes {1 - real / (len(train) * args.cutoff):.0%}",
              file=sys.stderr)

        # same samples per optimizer step on both sides: the baseline's batch = samples per packed row
        batch = max(1, round(len(train) / len(D.pack(train, args.cutoff))))
        print(f"tunedoc train (packing, 1 row of ~{batch} samples per step) ...", file=sys.stderr, flush=True)
        t_tunedoc, adapter = run_tunedoc(model_dir, tmp / "train.jsonl", tmp / "runs", args)
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        loss_tunedoc = eval_loss(PeftModel.from_pretrained(base, str(adapter)), held, pad_id)

        print(f"baseline: HF Trainer, padding to max_length, no packing, batch {batch} ...", file=sys.stderr,
              flush=True)
        t_base, model = run_baseline(model_dir, train, tmp / "hf", args, pad_id, batch)
        loss_base = eval_loss(model, held, pad_id)

    per_epoch = lambda t: t / args.epochs  # noqa: E731
    ratio = t_tunedoc / t_base
    print(f"{'':<28}{'s/epoch':>10}{'eval loss':>12}")
    print(f"{'tunedoc (packing)':<28}{per_epoch(t_tunedoc):>10.2f}{loss_tunedoc:>12.4f}")
    print(f"{'HF Trainer (max_length)':<28}{per_epoch(t_base):>10.2f}{loss_base:>12.4f}")
    ok_speed, ok_loss = ratio <= 0.5, loss_tunedoc <= loss_base + 0.01
    print(f"ratio tunedoc/baseline: {ratio:.2f} (goal <= 0.5: {'met' if ok_speed else 'NOT met'}); "
          f"loss {'no worse' if ok_loss else 'WORSE'} ({loss_tunedoc:.4f} vs {loss_base:.4f})")
    return 0 if ok_speed and ok_loss else 1


if __name__ == "__main__":
    sys.exit(main())
