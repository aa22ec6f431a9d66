"""`tunedoc eval RUN [--data FILE] [--limit N] [--base] [--json]` (`eval_args` / `eval_main`).

stdout carries the result (a table, or JSON with --json); stderr carries progress and problems. A missing metrics
library is a one-paragraph message with the pip command (exit code 2), checked before any model loads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _err(msg: str) -> None:
    print(f"tunedoc eval: {msg}", file=sys.stderr)


def eval_args(p: argparse.ArgumentParser) -> None:
    p.epilog = ("Scores (0-100, higher is better): BLEU-4 (sacrebleu), ROUGE-1/2/L (rouge-score; Chinese text "
                "segmented with jieba, and the result says which), exact match; and the eval loss / perplexity on the "
                "reference answers (lower is better). Greedy decoding, the same prompts for base and tuned. Results: "
                "RUN/eval/<time>/ (scores.json, and examples.jsonl with every prompt, reference and answer) and an "
                "`eval` event the screens show; `tunedoc compare RUN...` tabulates runs, the Runs screen's `v` lists "
                "the answers side by side. A demo run scores its held-out identity questions by itself at its end. "
                "Needs the eval extra: pip install 'tunedoc[eval]'.")
    p.add_argument("run", metavar="RUN", help="run id, unique prefix, or run directory (finished or still training)")
    p.add_argument("--data", help="held-out examples (any format `tunedoc train` reads; default: the run's eval "
                   "split, i.e. the examples it held out of training; for a demo run, its closing eval's held-out "
                   "questions)")
    p.add_argument("--format", default="auto", choices=["auto", "alpaca", "sharegpt", "openai"],
                   help="--data's format (default: detect)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="the first N examples only")
    p.add_argument("--base", action="store_true",
                   help="also answer the same prompts with the base model alone (adapter off), for a before/after")
    p.add_argument("--max-new-tokens", type=int, default=128, help="answer length limit (default 128)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per generate() call (default 8)")
    p.add_argument("--runs-dir", type=Path, default=None,
                   help="where runs live (default: $TUNEDOC_RUNS_DIR or ./runs)")
    p.add_argument("--json", action="store_true", help="print scores.json's content as JSON")


def eval_main(args) -> int:
    from tunedoc.trainer.eval_metrics import MetricsMissing, require_metrics
    from tunedoc.trainer.rundir import RunNotFound, resolve_run

    try:
        require_metrics()
    except MetricsMissing as e:
        _err(str(e))
        return 2
    try:
        run_dir = resolve_run(args.run, args.runs_dir)
    except RunNotFound as e:
        _err(str(e))
        return 2
    if args.limit is not None and args.limit < 1:
        _err("--limit must be 1 or more")
        return 2
    from tunedoc.trainer.eval import EvalError, evaluate_run, format_result

    try:
        result = evaluate_run(run_dir, data=args.data, fmt=args.format, limit=args.limit, base=args.base,
                              max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                              progress=lambda m: print(m, file=sys.stderr, flush=True))
    except (EvalError, MetricsMissing, FileNotFoundError) as e:
        _err(str(e))
        return 2
    except ValueError as e:  # trainer.data's TemplateError: the model's chat template cannot format the prompts
        if type(e).__name__ != "TemplateError":
            raise
        _err(f"the model's chat template cannot format these prompts: {e}")
        return 2
    print(json.dumps(result, ensure_ascii=False) if args.json else format_result(result))
    return 0
