"""The profile's `eval_every` / `eval_metrics` / `eval_limit` / `save_best`: a small generation eval while training;
and config.json's `final_eval`: the run's closing eval after its last step (final_eval below; the demo's).

The recipe (trainer/recipe.py) calls a TrainingEval between optimizer steps on rank 0; it scores the first eval_limit
held-out examples with trainer/eval.py's batched greedy generation, writes an `eval` event (kind "generation",
source "training") that the screens plot, and with save_best keeps the adapter of the best score so far in
RUN/best/ (with best.json: metric, value, step).
"""

from __future__ import annotations

import shutil

import traceback

from tunedoc.trainer.control import EvalStopped
from tunedoc.trainer.eval import (
    METRICS,
    EvalError,
    MetricsMissing,
    eval_examples,
    evaluate_loaded,
    evaluate_model,
    require_metrics,
    run_examples,
)


class TrainingEval:
    """The profile's eval_every: a small generation eval (the first eval_limit held-out examples) on the model
    being trained, an `eval` event (kind generation, source training) the Train screen plots, and with save_best
    the adapter of the best score so far in RUN/best/. Called by the recipe between steps on rank 0."""

    def __init__(self, recipe):
        self.recipe = recipe
        p = recipe.profile
        self.metrics = tuple(p.eval_metrics)
        self.best_metric = p.save_best or None
        self.best: float | None = None
        self.examples = eval_examples(recipe.eval_convs)[: p.eval_limit]
        self.disabled = None
        if not self.examples:
            self.disabled = "eval_every needs held-out examples: set eval_split (e.g. 0.1)"
        else:
            try:
                require_metrics()
            except MetricsMissing as e:
                self.disabled = str(e)
        if self.disabled:
            recipe.emit("warning", id="eval-off", message=f"no generation evals: {self.disabled}")

    def __call__(self) -> dict | None:
        if self.disabled:
            return None
        r = self.recipe
        keep = self.metrics + ((self.best_metric,) if self.best_metric else ())
        scores, _ = evaluate_model(r.model, r.tokenizer, self.examples, max_new_tokens=64,
                                   batch_size=max(1, r.mem.micro_batch), cutoff_len=r.mem.cutoff_len, metrics=keep)
        fields = {"kind": "generation", "source": "training", "step": r.step, "n": len(self.examples),
                  "tokenization": scores["tokenization"],
                  **{k: scores[k] for k in (*METRICS, "eval_loss", "perplexity") if k in scores}}
        if self.best_metric:
            score_value = scores.get(self.best_metric)
            if score_value is not None and (self.best is None or score_value > self.best):
                self.best = score_value
                self._save_best(score_value)
                fields["best"] = True
        return r.emit("eval", **fields)

    def _save_best(self, value: float) -> None:
        from tunedoc.trainer.rundir import write_json

        r = self.recipe
        tmp = r.run_dir / ".tmp-best"
        shutil.rmtree(tmp, ignore_errors=True)
        r.model.save_pretrained(tmp, save_embedding_layers=False)
        r.tokenizer.save_pretrained(tmp)
        write_json(tmp / "best.json", {"metric": self.best_metric, "value": value, "step": r.step})
        final = r.run_dir / "best"
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)


def final_eval(recipe, spec: dict) -> None:
    """config.json's final_eval ({data, format?, base?, max_new_tokens?, batch_size?, limit?, label?}): the examples
    answered by the model just trained (no reload) and, with base, by the same weights with the adapter off, scored
    into RUN/eval/<time>/ and an `eval` event (source "final"), after a `phase` event and status.json's phase
    "evaluating". The recipe's _eval_control runs before every batch: pause waits there, stop or a signal raises
    EvalStopped. A stop, a signal or a failure ends the eval with a warning; the run still completes."""
    r = recipe
    try:
        require_metrics()
        examples, desc = run_examples(r.run_dir, r.config, spec.get("data"), spec.get("format", "auto"))
        if spec.get("limit"):
            examples = examples[: int(spec["limit"])]
        if not examples:
            raise EvalError(f"no example with a user prompt and an assistant answer in {desc}")
    except (EvalError, MetricsMissing) as e:
        r.emit("warning", id="final-eval-off", message=f"no closing eval: {e}")
        return
    base = bool(spec.get("base", True))
    label = spec.get("label") or f"{len(examples)} held-out examples"
    r.emit("phase", phase="evaluating", n=len(examples),
           message=f"evaluating on {label}, {'base model vs tuned' if base else 'the tuned model'}...")
    r._status(status="running", phase="evaluating")
    try:
        r.model.eval()
        evaluate_loaded(r.model, r.tokenizer, r.run_dir, examples, desc, base=base, step=r.step,
                        label="the trained model", max_new_tokens=int(spec.get("max_new_tokens", 128)),
                        batch_size=int(spec.get("batch_size", 8)), cutoff_len=r.mem.cutoff_len,
                        progress=lambda m: print(m, flush=True), check=r._eval_control, source="final", emit=r.emit)
    except EvalStopped as e:
        r.emit("warning", id="final-eval-stopped", message=f"closing eval not finished ({e}); the adapter is saved: "
               f"`tunedoc eval {r.run_dir.name} --base --data {spec.get('data')}` scores it")
    except Exception as e:  # noqa: BLE001 - the training is done and saved; a failed eval must not fail the run
        traceback.print_exc()
        r.emit("warning", id="final-eval-failed", message=f"the closing eval failed: {type(e).__name__}: {e} (the "
               f"adapter is saved; the traceback is in {r.run_dir / 'trainer.log'})")
    finally:
        r._status(phase=None)
