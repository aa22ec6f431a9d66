"""The demo's last act: a base-vs-tuned eval on identity questions the run never saw (phrasings that are not in
its data set), whose `eval` event says how much the scores moved (events.score_change). No torch here: the demo's
config.json gets a `final_eval` entry (final_eval_config) and the training process scores it with trainer/eval.py
after its last step."""

from __future__ import annotations

import json
import re
from pathlib import Path

MAX_NEW_TOKENS = 48  # the taught answers are one or two sentences

HELD_OUT = [  # none of these is in trainer/tiny.py's identity questions
    ("Could you tell me your name?", "I am {name}, an assistant made by {maker}. How can I help you today?"),
    ("Who am I chatting with right now?", "I am {name}, an AI assistant created by {maker}. What can I do for you?"),
    ("Which assistant is this?", "My name is {name}. I am an AI assistant developed by {maker}."),
    ("Who is behind you?", "I am {name}, an AI assistant trained by {maker}."),
    ("Tell me your name, please.", "You can call me {name}. I was made by {maker} to help you."),
    ("Good evening! Who are you?", "Hello! I am {name}, an assistant built by {maker}. I am happy to help."),
    ("您是哪位?", "我是 {name},由 {maker} 开发的人工智能助手。"),
    ("请问你的名字是什么?", "我叫 {name},是 {maker} 训练的助手,很高兴为您服务。"),
]


def write_held_out(path: str | Path, name: str, maker: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"messages": [{"role": "user", "content": q},
                                      {"role": "assistant", "content": a.format(name=name, maker=maker)}]},
                        ensure_ascii=False) for q, a in HELD_OUT]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def final_eval_config(demo_dir: Path, identity: str, maker: str) -> dict:
    """config.json's `final_eval` for a demo run: the held-out questions (written into `demo_dir`, beside the demo's
    model and data), base vs tuned. The training process runs it after its last step (trainer/eval_training.py
    final_eval), so every way of starting the demo (the app, --detach, --headless) ends with it."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{identity}-{maker}").strip("-") or "identity"
    data = write_held_out(Path(demo_dir) / f"heldout-{slug}.jsonl", identity, maker)
    return {"data": str(data.resolve()), "format": "openai", "base": True, "max_new_tokens": MAX_NEW_TOKENS,
            "label": f"{len(HELD_OUT)} held-out identity questions"}
