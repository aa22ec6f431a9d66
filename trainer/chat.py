"""Generate with a base model plus a run's LoRA adapter (`tunedoc chat`), and the generation the recipe's sample
events use (trainer/generate.py, shared with the recipe). torch/transformers/peft are imported inside
functions.

    model, tokenizer, desc = load_for_chat("runs/20250101-120000-tiny")   # a run: base model + its adapter
    reply = generate_reply(model, tokenizer, [{"role": "user", "content": "Who are you?"}])
"""

from __future__ import annotations

import sys
from pathlib import Path

from tunedoc.trainer.generate import generate_reply
from tunedoc.trainer.rundir import ADAPTER, CHECKPOINTS, CONFIG, RunNotFound, read_json, resolve_run


__all__ = ["quiet_libraries", "generate_reply", "find_adapter", "load_for_chat", "chat_loop"]


def quiet_libraries() -> None:
    """Keep transformers' load-time progress bars and deprecation chatter off the user's terminal."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # noqa: BLE001 - cosmetic only
        pass


def find_adapter(run_dir: Path) -> Path | None:
    """The run's final adapter, else its latest checkpoint's adapter (a run still training or stopped early)."""
    if (run_dir / ADAPTER / "adapter_config.json").is_file():
        return run_dir / ADAPTER
    ckpts = sorted(p for p in (run_dir / CHECKPOINTS).glob("step-*") if (p / "adapter_config.json").is_file())
    return ckpts[-1] if ckpts else None


def load_for_chat(run_or_model: str, runs_dir=None, device: str | None = None):
    """(model, tokenizer, description). A run loads its base model the way it trained (same quantization) plus its
    adapter; anything else is loaded as a plain model path or Hub id."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_libraries()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        run_dir = resolve_run(run_or_model, runs_dir)
    except RunNotFound:
        run_dir = None
    if run_dir is None:
        if not Path(run_or_model).exists() and "/" not in run_or_model:
            raise RunNotFound(f"{run_or_model!r} is neither a run (see `tunedoc runs`) nor a model path or Hub id")
        tok = AutoTokenizer.from_pretrained(run_or_model)
        model = AutoModelForCausalLM.from_pretrained(run_or_model, dtype="auto", device_map={"": device})
        return model, tok, f"model {run_or_model}"

    from peft import PeftModel

    from tunedoc.trainer.recipe import quantization_config, resolve_precision

    config = read_json(run_dir / CONFIG)
    adapter = find_adapter(run_dir)
    if adapter is None:
        raise FileNotFoundError(f"run {run_dir.name} has no adapter or checkpoint yet; wait for its first "
                                f"checkpoint (`tunedoc save {run_dir.name}` asks for one)")
    profile = config.get("profile", {})
    dtype, _ = resolve_precision(profile.get("precision", "auto"), device)
    tok = AutoTokenizer.from_pretrained(adapter if (adapter / "tokenizer_config.json").is_file() else config["model"])
    base = AutoModelForCausalLM.from_pretrained(
        config["model"], dtype=dtype, device_map={"": device},
        quantization_config=quantization_config(profile.get("quant", "none"), dtype),
    )
    model = PeftModel.from_pretrained(base, str(adapter))
    model.eval()
    return model, tok, f"run {run_dir.name}: {config['model']} + {adapter}"


def chat_loop(model, tokenizer, max_new_tokens: int, temperature: float, system: str | None = None) -> None:
    """Interactive chat on the terminal; /reset clears the history, /exit or Ctrl-D leaves."""
    history: list[dict] = [{"role": "system", "content": system}] if system else []
    print("chat: type a message; /reset clears the history, /exit (or Ctrl-D) leaves", file=sys.stderr)
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            print(file=sys.stderr)
            return
        if not line:
            continue
        if line in ("/exit", "/quit"):
            return
        if line == "/reset":
            history = history[:1] if system else []
            continue
        history.append({"role": "user", "content": line})
        reply = generate_reply(model, tokenizer, history, max_new_tokens, temperature)
        history.append({"role": "assistant", "content": reply})
        print(f"assistant> {reply}", flush=True)
