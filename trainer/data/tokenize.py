"""Conversations -> token ids and labels with the tokenizer's own chat template; loss on assistant turns only.

Works for any chat template, with or without `{% generation %}` markers: the assistant spans are found by rendering
the conversation up to each assistant turn (with the generation prompt) and up to its end; the characters between
are the assistant's text plus its end-of-turn token. Token offsets map the character spans to tokens. Trailing
whitespace after the end-of-turn token (ChatML's "\\n") is not trained on.
"""
from __future__ import annotations

from tunedoc.trainer.data.formats import Conversation

IGNORE = -100


class TemplateError(ValueError):
    """The tokenizer cannot format conversations (no chat template, or a template that rejects the roles)."""


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool, tools: list | None = None) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                             add_generation_prompt=add_generation_prompt)
    except ValueError as e:
        if "chat_template" in str(e) or "chat template" in str(e):
            raise TemplateError(f"the tokenizer has no chat template ({e}); use an instruct/chat model or a "
                                "tokenizer with chat_template set") from None
        raise
    except Exception as e:  # jinja2 errors raised by the template itself, e.g. "roles must alternate"
        if type(e).__module__.startswith("jinja2"):
            raise TemplateError(f"the chat template rejected the conversation: {e}") from None
        raise


def assistant_spans(messages: list[dict], tokenizer, tools: list | None = None) -> tuple[str, list[tuple[int, int]]]:
    """(full text, [(start, end)]): character spans of each trained assistant turn's text and end-of-turn token
    (a turn with loss_weight 0 is context only)."""
    full = _render(tokenizer, messages, False, tools)
    spans: list[tuple[int, int]] = []
    search_from = 0
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prefix = _render(tokenizer, messages[:i], True, tools)
        upto = _render(tokenizer, messages[: i + 1], False, tools)
        content = m["content"].strip()
        if full.startswith(upto) and upto.startswith(prefix):
            start, end = len(prefix), len(upto.rstrip())
        else:
            # templates that rewrite earlier turns (e.g. drop reasoning): find the content in the full text
            start = full.find(content, search_from) if content else -1
            if start < 0:
                continue
            end = start + len(content)
            tail = upto[upto.rfind(content) + len(content):].rstrip() if content in upto else ""
            if tail and full.startswith(tail, end):
                end += len(tail)
        while start < end and full[start] in " \t\r\n" and not content.startswith(full[start]):
            start += 1
        search_from = end
        if m.get("loss_weight", 1) == 0:  # LLaMA-Factory v1: shown as context, not trained on
            continue
        spans.append((start, end))
    return full, spans


def tokenize(conv: Conversation, tokenizer, cutoff_len: int) -> dict:
    """{"input_ids", "labels", "length"}: labels are the ids on assistant tokens and IGNORE (-100) elsewhere.
    Sequences longer than cutoff_len are cut at the end; "length" keeps the untruncated token count."""
    messages, tools = (conv.messages, conv.tools) if isinstance(conv, Conversation) else (conv, None)
    text, spans = assistant_spans(messages, tokenizer, tools)
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:
        raise TemplateError("this tokenizer gives no character offsets (a slow, non-`tokenizers` tokenizer): "
                            "install `tokenizers` and load the fast tokenizer") from None
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [IGNORE] * len(ids)
    k = 0
    for t, (s, e) in enumerate(offsets):
        while k < len(spans) and s >= spans[k][1]:
            k += 1
        if k == len(spans):
            break
        if spans[k][0] <= s < spans[k][1] and e > s:
            labels[t] = ids[t]
    length = len(ids)
    if length > cutoff_len:
        ids, labels = ids[:cutoff_len], labels[:cutoff_len]
    return {"input_ids": list(ids), "labels": labels, "length": length}


def build_samples(convs: list[Conversation], tokenizer, cutoff_len: int) -> list[dict]:
    """tokenize() for each conversation, in order."""
    if cutoff_len < 2:
        raise ValueError(f"cutoff_len must be at least 2, got {cutoff_len}")
    return [tokenize(c, tokenizer, cutoff_len) for c in convs]
