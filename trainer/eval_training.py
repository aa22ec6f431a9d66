"""The profile's `eval_every` / `eval_metrics` / `eval_limit` / `save_best`: a small generation eval while training.

The recipe (trainer/recipe.py) calls a TrainingEval between optimizer steps on rank 0; it scores the first eval_limit
held-out examples with trainer/eval.py's batched greedy generation, writes an `eval` event (kind "generation",
source "training") that the screens plot, and with save_best keeps the adapter of the best score so far in
RUN/best/ (with best.json: metric, value, step).
"""

from __future__ import annotations

import shutil

from tunedoc.trainer.eval import METRICS, MetricsMissing, eval_examples, evaluate_model, require_metrics


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
