"""Scores for generated answers, computed by well-kept libraries (the `[eval]` extra), never by our own code:

- BLEU-4: sacrebleu's sentence BLEU (exp smoothing, effective order), averaged over the examples, 0-100
  (LLaMA-Factory's `sft/metric.py` also averages per-example BLEU-4).
- ROUGE-1/2/L: rouge-score's F-measure, averaged, 0-100.
- exact match: the answer equals the reference after stripping surrounding white space, 0-100.

Tokenization is chosen per example by its reference text and stated in the result: Chinese references (a quarter
or more of the non-space characters are Han) are segmented into words with jieba, as LLaMA-Factory does, for both
BLEU (sacrebleu with tokenize="none" on the space-joined words) and ROUGE; other text uses sacrebleu's standard
"13a" tokenizer and rouge-score's own tokenizer. (rouge-score's own tokenizer drops every non-ASCII character, so
without segmentation Chinese would score 0 whatever the answer.)

This module imports no torch; the metrics libraries are imported when scoring starts, and a missing one raises
MetricsMissing with the pip command.
"""

from __future__ import annotations

import importlib
import re
import sys

# import name -> pip name
METRIC_PACKAGES = {"sacrebleu": "sacrebleu", "rouge_score": "rouge-score", "jieba": "jieba"}
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
METRICS = ("bleu4", "rouge1", "rouge2", "rougeL", "exact_match")
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


class MetricsMissing(RuntimeError):
    """A metrics library is not installed; the message names the pip command."""


def pip_command(missing: list[str] | None = None) -> str:
    names = " ".join(METRIC_PACKAGES[m] for m in (missing or METRIC_PACKAGES))
    return f"{sys.executable} -m pip install 'tunedoc[eval]'   (or: {sys.executable} -m pip install {names})"


def missing_packages() -> list[str]:
    """Import names of the metrics libraries that cannot be imported here."""
    out = []
    for name in METRIC_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            out.append(name)
    return out


def require_metrics() -> None:
    missing = missing_packages()
    if missing:
        raise MetricsMissing(
            f"scoring answers needs {', '.join(METRIC_PACKAGES[m] for m in missing)} (the [eval] extra), which "
            f"{'is' if len(missing) == 1 else 'are'} not installed for {sys.executable}; install with:\n  "
            + pip_command(missing))


def is_chinese(text: str) -> bool:
    chars = [c for c in text if not c.isspace()]
    return bool(chars) and len(HAN.findall(text)) >= 0.25 * len(chars)


def jieba_words(text: str) -> list[str]:
    import jieba

    jieba.setLogLevel(60)  # no "Building prefix dict" chatter on stderr
    return [w for w in jieba.lcut(text) if w.strip()]


class JiebaTokenizer:
    """rouge-score's tokenizer interface (`tokenize(text) -> list[str]`) over jieba words."""

    def tokenize(self, text: str) -> list[str]:
        return jieba_words(text)


_scorers: dict[str, object] = {}


def _rouge(kind: str):
    if kind not in _scorers:
        from rouge_score import rouge_scorer

        tok = JiebaTokenizer() if kind == "jieba" else None
        _scorers[kind] = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False, tokenizer=tok)
    return _scorers[kind]


def score_one(prediction: str, reference: str) -> dict:
    """One example's scores (0-100) and the tokenization used ("jieba" or "13a")."""
    import sacrebleu

    if is_chinese(reference):
        tokenization = "jieba"
        hyp, ref = " ".join(jieba_words(prediction)), " ".join(jieba_words(reference))
        bleu = sacrebleu.sentence_bleu(hyp, [ref], tokenize="none").score
    else:
        tokenization = "13a"
        bleu = sacrebleu.sentence_bleu(prediction, [reference]).score
    rouge = _rouge(tokenization).score(reference, prediction)
    out = {"bleu4": bleu, **{k: 100 * rouge[k].fmeasure for k in ROUGE_TYPES},
           "exact_match": 100.0 * (prediction.strip() == reference.strip()), "tokenization": tokenization}
    return out


def score(predictions: list[str], references: list[str]) -> dict:
    """{"bleu4", "rouge1", "rouge2", "rougeL", "exact_match"} (means over the examples, 0-100, rounded to 4
    places), "n", "tokenization" ({"13a": n, "jieba": n}: how many references each used) and "per_example"."""
    require_metrics()
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    per = [score_one(p, r) for p, r in zip(predictions, references)]
    n = len(per)
    out = {m: round(sum(s[m] for s in per) / n, 4) if n else None for m in METRICS}
    counts: dict[str, int] = {}
    for s in per:
        counts[s["tokenization"]] = counts.get(s["tokenization"], 0) + 1
    out.update(n=n, tokenization=counts, per_example=per)
    return out


def describe_tokenization(counts: dict[str, int]) -> str:
    parts = []
    if counts.get("13a"):
        parts.append(f"{counts['13a']} with sacrebleu 13a / rouge-score's tokenizer")
    if counts.get("jieba"):
        parts.append(f"{counts['jieba']} Chinese with jieba word segmentation")
    return "; ".join(parts) or "no examples"
