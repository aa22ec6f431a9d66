"""Eval throughput: batched generation (left padding, trainer/eval.py's generate_batch) against one prompt at a time,
in examples per second, as a ratio measured in the same run. Greedy answers must be the same either way.

    .venv/bin/python bench/eval_speed.py [--model DIR] [--n 40] [--batch 8] [--tokens 32] [--repeats 3]

Without --model it builds the tiny demo model (trainer/tiny.py) in a temporary folder. The two ways alternate
`--repeats` times and the best time of each counts (the box is shared: the best is the least disturbed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a model directory (default: the tiny demo model, built here)")
    ap.add_argument("--n", type=int, default=40, help="examples (identity questions, repeated as needed)")
    ap.add_argument("--batch", type=int, default=8, help="prompts per generate() call in the batched way")
    ap.add_argument("--tokens", type=int, default=32, help="max new tokens per answer")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunedoc.trainer import data as D
    from tunedoc.trainer.chat import quiet_libraries
    from tunedoc.trainer.eval import eval_examples, generate_batch
    from tunedoc.trainer.tiny import build_tiny_model, write_identity_dataset

    quiet_libraries()
    tmp = Path(tempfile.mkdtemp(prefix="tunedoc-bench-eval-"))
    model_dir = args.model or build_tiny_model(tmp / "tiny")
    examples = eval_examples(D.load_conversations(write_identity_dataset(tmp / "id.jsonl", n=args.n)))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto", device_map={"": device})
    generate_batch(model, tok, examples[:2], 4, 2)  # warm-up

    best = {"batched": float("inf"), "one at a time": float("inf")}
    answers = {}
    for _ in range(args.repeats):
        for name, bs in (("batched", args.batch), ("one at a time", 1)):
            t0 = time.perf_counter()
            answers[name] = generate_batch(model, tok, examples, args.tokens, bs)
            best[name] = min(best[name], time.perf_counter() - t0)
    same = sum(a == b for a, b in zip(answers["batched"], answers["one at a time"]))
    print(f"{len(examples)} examples, {args.tokens} new tokens max, greedy, on {device}; best of {args.repeats}")
    for name, t in best.items():
        print(f"  {name:<14} {len(examples) / t:8.1f} examples/s  ({t:.2f} s)")
    print(f"ratio batched/one-at-a-time: {best['one at a time'] / best['batched']:.2f}x (batch {args.batch}); "
          f"identical answers: {same}/{len(examples)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
