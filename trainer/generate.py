"""One reply from a model with its chat template: `tunedoc chat` and the recipe's sample events both use it.

A module of its own so that the recipe and trainer/chat.py (which loads a run the way the recipe trained it) do not
import each other. torch is imported inside the function.
"""

from __future__ import annotations


def generate_reply(model, tokenizer, messages: list[dict], max_new_tokens: int = 64, temperature: float = 0.0) -> str:
    """The assistant's next reply to `messages`, using the tokenizer's chat template. Greedy when temperature 0."""
    import torch

    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    device = next(model.parameters()).device
    enc = {k: v.to(device) for k, v in enc.items()}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    kwargs = dict(max_new_tokens=max_new_tokens, pad_token_id=pad_id, eos_token_id=tokenizer.eos_token_id)
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=0.95)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model.generate(**enc, **kwargs)
    finally:
        if was_training:
            model.train()
    new = out[0, enc["input_ids"].shape[1]:]
    return tokenizer.decode(new, skip_special_tokens=True).strip()
