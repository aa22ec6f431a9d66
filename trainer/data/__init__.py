"""The trainer's data layer: read and validate conversation data, tokenize it with the model's chat template
(loss on assistant turns only), pack and batch it. The recipe and `tunedoc data check` use this API:

    load_conversations(path, fmt="auto") -> list[Conversation]    # raises DataError listing every problem
    tokenize(conv, tokenizer, cutoff_len) -> {"input_ids", "labels", "length"}
    build_samples(convs, tokenizer, cutoff_len) -> list[dict]
    pack(samples, cutoff_len) -> rows {"input_ids", "labels", "position_ids"}
    collate(batch, pad_id, packing) -> dict of tensors (torch imported inside)
    stats(samples, cutoff_len) / length_stats(lengths, cutoff_len) -> dict

formats and packing import no torch or transformers; tokenize needs a transformers tokenizer passed in.
"""
from tunedoc.trainer.data.formats import (FORMATS, ROLES, Conversation, DataError, Problem, detect_format,
                                  load_conversations)
from tunedoc.trainer.data.packing import IGNORE, collate, length_stats, pack, stats
from tunedoc.trainer.data.tokenize import TemplateError, assistant_spans, build_samples, tokenize

__all__ = ["FORMATS", "ROLES", "IGNORE", "Conversation", "DataError", "Problem", "TemplateError", "assistant_spans",
           "build_samples", "collate", "detect_format", "length_stats", "load_conversations", "pack", "stats",
           "tokenize"]
