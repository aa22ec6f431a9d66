"""The trainer's data layer: read and validate conversation data, tokenize it with the model's chat template
(loss on assistant turns only), pack and batch it. The recipe and `tunedoc data check` use this API:

    load_conversations(path, fmt="auto") -> list[Conversation]    # raises DataError listing every problem
    tokenize(conv, tokenizer, cutoff_len) -> {"input_ids", "labels", "length"}
    build_samples(convs, tokenizer, cutoff_len) -> list[dict]
    pack(samples, cutoff_len) -> rows {"input_ids", "labels", "position_ids"}
    collate(batch, pad_id, packing) -> dict of tensors (torch imported inside)
    stats(samples, cutoff_len) / length_stats(lengths, cutoff_len) -> dict
    split_held_out(convs, eval_split, seed) -> (held out, train): the recipe's split, which evals re-create

formats and packing import no torch or transformers; tokenize needs a transformers tokenizer passed in.
"""
from tunedoc.trainer.data.formats import (FORMATS, ROLES, Conversation, DataError, Problem, detect_format,
                                  load_conversations)
from tunedoc.trainer.data.packing import IGNORE, collate, length_stats, pack, stats
from tunedoc.trainer.data.tokenize import TemplateError, assistant_spans, build_samples, tokenize



def split_held_out(convs: list, eval_split: float, seed: int) -> tuple[list, list]:
    """(held-out conversations, training conversations): one seeded shuffle, the first eval_split of it held out
    (at least one when eval_split > 0 and there are two or more). The recipe trains on the second part; `tunedoc
    eval` scores the first, so both must come from this one function."""
    import random

    order = list(range(len(convs)))
    random.Random(seed).shuffle(order)
    n_eval = int(len(convs) * eval_split) if eval_split > 0 else 0
    if eval_split > 0 and n_eval == 0 and len(convs) > 1:
        n_eval = 1
    return [convs[i] for i in order[:n_eval]], [convs[i] for i in order[n_eval:]]


__all__ = ["FORMATS", "ROLES", "IGNORE", "Conversation", "DataError", "Problem", "TemplateError", "assistant_spans",
           "build_samples", "collate", "detect_format", "length_stats", "load_conversations", "pack", "split_held_out", "stats",
           "tokenize"]
