"""Packing samples into rows, batching them into tensors, and the numbers `tunedoc data check` shows.

Packed rows carry position_ids that restart at 0 for each sample. collate(packing=True) passes position_ids and
no attention_mask: transformers (masking_utils.find_packed_sequence_indices, used by the sdpa, eager and flex
attention paths of Llama-style models) then builds a block-diagonal causal mask from the position_ids, so attention
never crosses a sample boundary. It does so only without a KV cache: run the model with use_cache=False (as training
does; with a cache, position_ids are ignored for masking and samples would see each other). tests/trainer/test_data.py proves the logits of a packed row equal those of its
samples run one by one.
"""
from __future__ import annotations

import bisect
import math

IGNORE = -100


def pack(samples: list[dict], cutoff_len: int) -> list[dict]:
    """Rows of at most cutoff_len tokens, each {"input_ids", "labels", "position_ids"}, by best-fit decreasing
    (longest sample first, into the fullest row it fits). Deterministic; every sample lands in exactly one row."""
    order = sorted(range(len(samples)), key=lambda i: (-len(samples[i]["input_ids"]), i))
    rows: list[dict] = []
    free: list[tuple[int, int]] = []  # sorted (space left, row index)
    for i in order:
        s = samples[i]
        n = len(s["input_ids"])
        if n == 0:
            continue
        if n > cutoff_len:
            raise ValueError(f"a sample has {n} tokens, more than cutoff_len {cutoff_len}: build samples with the "
                             "same cutoff_len")
        j = bisect.bisect_left(free, (n, -1))
        if j < len(free):
            space, r = free.pop(j)
        else:
            space, r = cutoff_len, len(rows)
            rows.append({"input_ids": [], "labels": [], "position_ids": []})
        row = rows[r]
        row["input_ids"] += s["input_ids"]
        row["labels"] += s["labels"]
        row["position_ids"] += list(range(n))
        if space - n > 0:
            bisect.insort(free, (space - n, r))
    return rows


def collate(batch: list[dict], pad_id: int, packing: bool) -> dict:
    """Pad a list of samples (or packed rows) to the longest one and make tensors.
    Not packed: input_ids, attention_mask, labels. Packed: input_ids, position_ids, labels (no attention_mask:
    the model separates samples by position_ids). Padding has label -100; in packed rows padding gets its own
    position_ids run, so it is a separate (ignored) segment."""
    import torch

    if not batch:
        raise ValueError("collate() needs at least one sample")
    width = max(len(r["input_ids"]) for r in batch)
    ids, labels, extra = [], [], []
    for r in batch:
        pad = width - len(r["input_ids"])
        ids.append(list(r["input_ids"]) + [pad_id] * pad)
        labels.append(list(r["labels"]) + [IGNORE] * pad)
        if packing:
            pos = list(r.get("position_ids") or range(len(r["input_ids"])))
            extra.append(pos + list(range(pad)))
        else:
            extra.append([1] * len(r["input_ids"]) + [0] * pad)
    out = {"input_ids": torch.tensor(ids, dtype=torch.long), "labels": torch.tensor(labels, dtype=torch.long)}
    out["position_ids" if packing else "attention_mask"] = torch.tensor(extra, dtype=torch.long)
    return out


def _nice(x: float) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is >= x."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= x:
                return m * step
        step *= 10


def _histogram(lengths: list[int], cutoff_len: int, bins: int) -> list[dict]:
    """About `bins` bins of a round width covering min..max: [{"lo", "hi", "count"}], lo inclusive, hi exclusive.
    cutoff_len is always a bin edge when it lies inside the range, so truncated samples have bins of their own."""
    if not lengths:
        return []
    lo, hi = min(lengths), max(lengths)
    width = _nice((hi - lo + 1) / bins)
    edges = [lo // width * width]
    while edges[-1] <= hi:
        edges.append(edges[-1] + width)
    if lo < cutoff_len <= hi and cutoff_len not in edges:
        edges = sorted(edges + [cutoff_len])
    out = [{"lo": a, "hi": b, "count": 0} for a, b in zip(edges, edges[1:])]
    for n in lengths:
        out[bisect.bisect_right(edges, n) - 1]["count"] += 1
    return out


def length_stats(lengths: list[int], cutoff_len: int, *, bins: int = 10, packed_rows: int | None = None) -> dict:
    """Numbers about sample lengths (in tokens, or estimated tokens) for a cutoff_len: counts, percentiles, a
    histogram, how many are truncated, and the padding waste of padding every sample to cutoff_len (the way
    most tutorials batch) vs packing into rows.
    packed_rows: the real row count from pack(); estimated by first-fit on the lengths when None."""
    kept = [min(n, cutoff_len) for n in lengths]
    total = sum(kept)
    if packed_rows is None:
        packed_rows = len(pack([{"input_ids": [0] * n, "labels": [0] * n} for n in kept], cutoff_len)) if kept else 0
    srt = sorted(lengths)

    def pct(q: float) -> int:
        return srt[min(len(srt) - 1, int(q * len(srt)))] if srt else 0

    def waste(slots: int) -> float:
        return round(1 - total / slots, 4) if slots else 0.0

    return {
        "samples": len(lengths),
        "tokens": total,
        "min": srt[0] if srt else 0, "median": pct(0.5), "p95": pct(0.95), "max": srt[-1] if srt else 0,
        "mean": round(sum(lengths) / len(lengths), 1) if lengths else 0.0,
        "cutoff_len": cutoff_len,
        "truncated": sum(n > cutoff_len for n in lengths),
        "histogram": _histogram(lengths, cutoff_len, bins),
        "padding": {
            "pad_to_cutoff": {"rows": len(kept), "waste": waste(len(kept) * cutoff_len)},
            "packing": {"rows": packed_rows, "waste": waste(packed_rows * cutoff_len)},
        },
    }


def stats(samples: list[dict], cutoff_len: int, *, bins: int = 10) -> dict:
    """length_stats() of tokenized samples (build_samples output), plus supervised (assistant) token counts."""
    lengths = [s.get("length", len(s["input_ids"])) for s in samples]
    out = length_stats(lengths, cutoff_len, bins=bins, packed_rows=len(pack(samples, cutoff_len)))
    out["supervised_tokens"] = sum(sum(1 for l in s["labels"] if l != IGNORE) for s in samples)
    out["no_supervised_tokens"] = sum(all(l == IGNORE for l in s["labels"]) for s in samples)
    return out
