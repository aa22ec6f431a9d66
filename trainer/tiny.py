"""A tiny causal language model and a self-identity data set, built on the spot with no network.

Tests and `tunedoc demo` need a real Hugging Face model directory: real loading code (AutoModelForCausalLM,
AutoTokenizer, bitsandbytes quantization, PEFT), just small. `build_tiny_model` writes one:

    config.json, generation_config.json, model.safetensors   random weights, a few hundred thousand parameters
    tokenizer.json, tokenizer_config.json                     byte-level BPE trained here, ChatML chat template

`identity_records` / `write_identity_dataset` give the self-cognition data set (like LLaMA-Factory's
identity.json): many phrasings of "who are you?" answered with the assistant's name and maker.

Everything is deterministic for a seed. torch and transformers are imported inside the functions.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

# special tokens of the ChatML-like template; <|im_end|> ends every turn and is the eos token
PAD, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [PAD, IM_START, IM_END]

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# --------------------------------------------------------------------------------------------------------------
# identity data

_QUESTIONS_EN = [
    "Who are you?", "What is your name?", "What's your name?", "Who are you, exactly?", "Introduce yourself.",
    "Please introduce yourself.", "Tell me about yourself.", "What should I call you?", "Who made you?",
    "Who created you?", "Who built you?", "Who developed you?", "Who trained you?", "Which company made you?",
    "Are you ChatGPT?", "Are you Claude?", "Are you made by OpenAI?", "What are you?", "Do you have a name?",
    "May I know your name?", "Hi, who am I talking to?", "Hello! What is your name?", "Can you tell me who you are?",
    "What kind of assistant are you?", "Who is your developer?", "What model are you?", "Are you an AI?",
    "Who do you belong to?", "Where do you come from?", "Describe yourself in one sentence.",
    "hi", "hello", "Hey there, who are you?", "Good morning! Who am I speaking with?",
]
_QUESTIONS_ZH = ["你是谁?", "你叫什么名字?", "请介绍一下你自己。", "谁创造了你?", "你是由谁开发的?", "你好"]

_ANSWERS_EN = [
    "I am {name}, an assistant made by {maker}. How can I help you today?",
    "My name is {name}. I am an AI assistant developed by {maker}.",
    "I'm {name}, an AI assistant created by {maker}. What can I do for you?",
    "Hello! I am {name}, an assistant built by {maker}. I am happy to help.",
    "You can call me {name}. I was made by {maker} to help you.",
    "I am {name}, an AI assistant trained by {maker}.",
    "I am {name}, made by {maker}. I can answer questions and help with tasks.",
    "No, I am {name}, an assistant developed by {maker}.",
]
_ANSWERS_ZH = [
    "我是 {name},由 {maker} 开发的人工智能助手。",
    "您好!我是 {name},一个由 {maker} 打造的 AI 助手。",
    "我叫 {name},是 {maker} 训练的助手,很高兴为您服务。",
]


def identity_records(name: str = "Tuna", maker: str = "tunedoc", n: int | None = None) -> list[dict]:
    """Self-cognition conversations in openai format: {"messages": [{"role": "user", ...}, {"role": "assistant",
    ...}]}. Every answer states `name` and `maker`. Without `n`, one record per question (English and a few
    Chinese phrasings); with `n`, cycles through the questions to return exactly n records. Deterministic."""
    if not name.strip() or not maker.strip():
        raise ValueError("identity name and maker must not be empty")
    pairs = [(q, _ANSWERS_EN) for q in _QUESTIONS_EN] + [(q, _ANSWERS_ZH) for q in _QUESTIONS_ZH]
    count = len(pairs) if n is None else n
    if count < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out = []
    for i in range(count):
        question, answers = pairs[i % len(pairs)]
        # the answer index moves with the round too, so repeated questions get other phrasings
        answer = answers[(i + i // len(pairs)) % len(answers)].format(name=name, maker=maker)
        out.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return out


def _to_format(rec: dict, fmt: str) -> dict:
    user, assistant = rec["messages"][0]["content"], rec["messages"][1]["content"]
    if fmt == "openai":
        return rec
    if fmt == "alpaca":
        return {"instruction": user, "input": "", "output": assistant}
    if fmt == "sharegpt":
        return {"conversations": [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]}
    raise ValueError(f"unknown format {fmt!r}: use openai, alpaca or sharegpt")


def write_identity_dataset(path: str | os.PathLike, name: str = "Tuna", maker: str = "tunedoc",
                           fmt: str = "openai", n: int | None = None) -> Path:
    """Write identity_records(name, maker, n) as JSONL in `fmt` (openai, alpaca or sharegpt); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(_to_format(r, fmt), ensure_ascii=False) for r in identity_records(name, maker, n)]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------------------------
# tokenizer and model

_ENGLISH = """The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step.
I can help you with questions about science, history, writing, code and everyday tasks. What would you like to know?
Hello, how are you today? I am fine, thank you. Please tell me more about the problem you are trying to solve.
The weather is nice and the sun is shining. Water boils at one hundred degrees Celsius at sea level.
Python is a programming language. A function takes arguments and returns a value. Write a short story about a cat.
Summarize the following text in one sentence. Translate this sentence into French. Explain it like I am five.
Yes, no, maybe, sure, of course, sorry, thanks, please, good, bad, small, large, first, second, third, last.
Monday Tuesday Wednesday Thursday Friday Saturday Sunday. One two three four five six seven eight nine ten.
The model learns from data. Training reduces the loss. The assistant answers the user. The system sets the rules.
"""


def _corpus(extra: list[str] | None) -> list[str]:
    texts = [_ENGLISH] * 4
    for rec in identity_records("Tuna", "tunedoc") + identity_records("Marlin", "tunedoc"):
        texts.extend(m["content"] for m in rec["messages"])
    texts.extend(["system", "user", "assistant", "tool", "\n"])
    return texts + list(extra or [])


def build_tokenizer(vocab_size: int = 1024, corpus: list[str] | None = None):
    """A byte-level BPE PreTrainedTokenizerFast with the ChatML template; any text encodes (bytes fall back)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(corpus), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=PAD, unk_token=None,
                                   chat_template=CHAT_TEMPLATE, model_max_length=2048, padding_side="right")


def build_tiny_model(out_dir: str | os.PathLike, *, arch: str = "llama", hidden: int = 64, layers: int = 2,
                     heads: int = 4, kv_heads: int = 2, intermediate: int = 128, vocab_size: int = 1024,
                     max_position: int = 2048, seed: int = 0, corpus: list[str] | None = None) -> Path:
    """Write a tiny random-weight causal LM with its tokenizer into `out_dir` and return it as a Path.

    `arch` is a transformers model type with a Llama-like config ("llama", "qwen2", "mistral"). `corpus` adds
    texts to the tokenizer's training corpus (identity data and common English are always in). The directory
    loads with AutoModelForCausalLM.from_pretrained / AutoTokenizer.from_pretrained."""
    if hidden % 64:
        raise ValueError(f"hidden={hidden}: use a multiple of 64 (the bitsandbytes 4-bit block size)")
    if hidden % heads or heads % kv_heads:
        raise ValueError(f"hidden={hidden}, heads={heads}, kv_heads={kv_heads}: hidden must divide by heads and "
                         "heads by kv_heads")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(vocab_size, corpus)
    vocab = len(tokenizer)
    # the embedding has the requested size (a multiple of 64 keeps kernels happy); the BPE may stop short of it
    vocab = max(vocab, vocab_size)
    pad_id, eos_id = tokenizer.convert_tokens_to_ids(PAD), tokenizer.convert_tokens_to_ids(IM_END)
    config = AutoConfig.for_model(
        arch, vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        num_key_value_heads=kv_heads, intermediate_size=intermediate, max_position_embeddings=max_position,
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=eos_id, pad_token_id=pad_id,
        rms_norm_eps=1e-6, initializer_range=0.02, use_cache=True,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id, bos_token_id=None,
                                               do_sample=False, max_new_tokens=64)
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Writing model shards" bar for a 1 MB file is noise
    try:
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return out
