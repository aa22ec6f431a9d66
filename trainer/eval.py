"""`tunedoc eval RUN`: did the fine-tune help? Generate answers for held-out examples with the base model plus the
run's adapter (and, with --base, the base model alone on the same prompts: the same loaded weights with the adapter
switched off), greedy, batched with left padding; score them (trainer/eval_metrics.py: BLEU-4, ROUGE-1/2/L, exact
match) and the teacher-forced eval loss / perplexity on the reference answers.

    result = evaluate_run(run_dir, data=None, limit=None, base=True)   # the run's eval split by default

Results go to RUN/eval/<time>/: `examples.jsonl` (every prompt, reference and answer, with per-example scores) and
`scores.json`; an `eval` event (kind "generation") goes to the run's events.jsonl so the screens see it. A run that
is still training is evaluated from a copy of its latest checkpoint's adapter: nothing in the run is changed but
the appended event line and the new eval folder.

torch/transformers/peft are imported inside functions.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from pathlib import Path

from tunedoc.trainer.eval_metrics import METRICS, MetricsMissing, describe_tokenization, require_metrics, score

__all__ = ["EvalError", "MetricsMissing", "eval_examples", "evaluate_run", "evaluate_loaded", "generate_batch",
           "eval_loss", "evaluate_model", "held_out"]

EVAL_DIR = "eval"


class EvalError(RuntimeError):
    """A problem the user can fix (no held-out data, no adapter yet, ...)."""


# ------------------------------------------------------------------------------------------------------ examples
def held_out(convs: list, eval_split: float, seed: int) -> list:
    """The conversations the recipe held out of training (the same split_held_out as trainer/recipe.py's setup())."""
    from tunedoc.trainer.data import split_held_out

    return split_held_out(convs, eval_split, seed)[0]


def eval_examples(convs: list) -> list[dict]:
    """{"messages" (the prompt: every turn before the last assistant turn), "reference" (that turn's text),
    "tools", "source", "conv"} for each conversation."""
    out = []
    for c in convs:
        msgs = c.messages
        last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=None)
        if last is None or last == 0:
            continue
        out.append({"messages": msgs[:last], "reference": str(msgs[last].get("content") or ""),
                    "tools": getattr(c, "tools", None), "source": getattr(c, "source", ""), "conv": c})
    return out


def run_examples(run_dir: Path, config: dict, data: str | None, fmt: str = "auto") -> tuple[list[dict], str]:
    """(examples, description of where they came from)."""
    from tunedoc.trainer import data as D

    if data:
        try:
            convs = D.load_conversations(data, fmt)
        except D.DataError as e:
            raise EvalError(f"{e}\n(`tunedoc data check {data}` lists the problems)") from None
        return eval_examples(convs), str(data)
    profile = config.get("profile", {})
    split = float(profile.get("eval_split", 0) or 0)
    closing = (config.get("final_eval") or {}).get("data")
    if split <= 0 and closing:  # a demo run: the held-out questions its closing eval used
        try:
            convs = D.load_conversations(closing, (config.get("final_eval") or {}).get("format", "auto"))
        except (D.DataError, FileNotFoundError) as e:
            raise EvalError(f"cannot read the run's closing-eval examples {closing}: {e}; pass --data FILE") from None
        return eval_examples(convs), f"{closing} (the run's closing-eval examples)"
    if split <= 0:
        raise EvalError(f"run {run_dir.name} held nothing out (eval_split=0): pass --data FILE with held-out "
                        "examples, or train with --set eval_split=0.1")
    try:
        convs = D.load_conversations(config["data"], config.get("format", "auto"))
    except (D.DataError, FileNotFoundError) as e:
        raise EvalError(f"cannot read the run's data {config.get('data')}: {e}; pass --data FILE") from None
    return eval_examples(held_out(convs, split, int(profile.get("seed", 42)))), \
        f"{config['data']} (the run's eval split, {split:g})"


# ------------------------------------------------------------------------------------------------------- model
def _adapter_source(run_dir: Path) -> tuple[Path, int | None, str]:
    """(adapter dir, step, label): the final adapter, else the latest checkpoint (a run still training)."""
    from tunedoc.trainer.chat import find_adapter
    from tunedoc.trainer.rundir import ADAPTER, read_json

    adapter = find_adapter(run_dir)
    if adapter is None:
        raise EvalError(f"run {run_dir.name} has no adapter or checkpoint yet; wait for its first checkpoint "
                        f"(`tunedoc save {run_dir.name}` asks for one)")
    if adapter == run_dir / ADAPTER:
        return adapter, read_json(run_dir / "status.json").get("step"), "final adapter"
    return adapter, int(adapter.name.split("-")[-1]), f"checkpoint {adapter.name}"


def _copy_adapter(run_dir: Path, dest: Path) -> tuple[int | None, str]:
    """Copy the adapter files out of the run, so that a training run may rotate its checkpoints meanwhile. A
    checkpoint deleted while being copied is retried with the newest one."""
    for attempt in range(5):
        src, step, label = _adapter_source(run_dir)
        try:
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            for f in src.iterdir():
                if f.is_file() and f.name != "trainer_state.pt":
                    shutil.copy2(f, dest / f.name)
            if (dest / "adapter_config.json").is_file() and any(dest.glob("adapter_model.*")):
                return step, label
        except FileNotFoundError:
            pass
        time.sleep(0.2 * (attempt + 1))
    raise EvalError(f"could not copy an adapter out of {run_dir} (checkpoints kept changing); try again")


def load_run_model(run_dir: Path, config: dict, adapter_dir: Path, device: str | None = None):
    """(peft model, tokenizer): the base model loaded the way the run trained it (same quantization) + the adapter."""
    import logging  # bitsandbytes asks for `pip install kernels` on some CPUs at import; its own kernels work

    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(lambda r: "kernels-community" not in r.getMessage())
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunedoc.trainer.chat import quiet_libraries
    from tunedoc.trainer.recipe import quantization_config, resolve_precision

    quiet_libraries()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    profile = config.get("profile", {})
    dtype, _ = resolve_precision(profile.get("precision", "auto"), device)
    tok_src = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else config["model"]
    tok = AutoTokenizer.from_pretrained(tok_src)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    base = AutoModelForCausalLM.from_pretrained(
        config["model"], dtype=dtype, device_map={"": device},
        quantization_config=quantization_config(profile.get("quant", "none"), dtype))
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    model.eval()
    return model, tok


# -------------------------------------------------------------------------------------------------- generation
def _prompt_text(tok, ex: dict) -> str:
    from tunedoc.trainer.data.tokenize import _render

    return _render(tok, ex["messages"], add_generation_prompt=True, tools=ex.get("tools"))


def generate_batch(model, tok, examples: list[dict], max_new_tokens: int = 128, batch_size: int = 8,
                   check=None) -> list[str]:
    """Greedy answers for `examples`, `batch_size` prompts per generate() call, left-padded. `check()` (optional)
    runs before each batch: the training process's closing eval acts on pause/stop there (it may block or raise)."""
    import torch

    device = next(model.parameters()).device
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    side = tok.padding_side
    tok.padding_side = "left"  # decoder-only models continue from the right end of every row
    out: list[str] = []
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(examples), max(1, batch_size)):
            if check is not None:
                check()
            texts = [_prompt_text(tok, ex) for ex in examples[i:i + batch_size]]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.no_grad():
                ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                     top_p=None, top_k=None, pad_token_id=pad_id, eos_token_id=tok.eos_token_id, use_cache=True)
            new = ids[:, enc["input_ids"].shape[1]:]
            out.extend(tok.decode(row, skip_special_tokens=True).strip() for row in new)
    finally:
        tok.padding_side = side
        if was_training:
            model.train()
    return out


def eval_loss(model, tok, examples: list[dict], cutoff_len: int = 1024, batch_size: int = 8,
              check=None) -> float | None:
    """Mean token cross-entropy on the assistant turns of the examples' conversations (teacher forced)."""
    import torch
    import torch.nn.functional as F

    from tunedoc.trainer import data as D

    samples = [s for s in D.build_samples([ex["conv"] for ex in examples if ex.get("conv") is not None], tok,
                                          cutoff_len) if any(l != D.IGNORE for l in s["labels"])]
    if not samples:
        return None
    device = next(model.parameters()).device
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(samples), batch_size):
                if check is not None:
                    check()
                batch = {k: v.to(device) for k, v in D.collate(samples[i:i + batch_size], pad_id, False).items()}
                labels = batch.pop("labels")
                logits = model(**batch).logits[:, :-1].float()
                target = labels[:, 1:]
                total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                         ignore_index=D.IGNORE, reduction="sum").item()
                count += int((target != D.IGNORE).sum())
    finally:
        if was_training:
            model.train()
    return total / max(count, 1)


def evaluate_model(model, tok, examples: list[dict], max_new_tokens: int = 128, batch_size: int = 8,
                   cutoff_len: int = 1024, metrics: tuple[str, ...] | None = None,
                   check=None) -> tuple[dict, list[str]]:
    """(scores, answers) for one model: the metrics plus eval_loss and perplexity."""
    answers = generate_batch(model, tok, examples, max_new_tokens, batch_size, check)
    scores = score(answers, [ex["reference"] for ex in examples])
    loss = eval_loss(model, tok, examples, cutoff_len, batch_size, check)
    scores["eval_loss"] = round(loss, 6) if loss is not None else None
    scores["perplexity"] = round(math.exp(min(loss, 50)), 4) if loss is not None else None
    if metrics:
        for m in METRICS:
            if m not in metrics:
                scores.pop(m, None)
    return scores, answers


def summary(scores: dict | None) -> dict | None:
    """The scores without the per-example list (what events and the table carry)."""
    if scores is None:
        return None
    return {k: v for k, v in scores.items() if k != "per_example"}


# ---------------------------------------------------------------------------------------------------------- run
def evaluate_run(run_dir: str | Path, data: str | None = None, fmt: str = "auto", limit: int | None = None,
                 base: bool = False, max_new_tokens: int = 128, batch_size: int = 8, progress=None,
                 emit_event: bool = True) -> dict:
    """Evaluate a run (finished or still training); returns the scores.json content."""
    from tunedoc.trainer.rundir import CONFIG, read_json

    say = progress or (lambda msg: None)
    run_dir = Path(run_dir)
    require_metrics()  # before any model loads: a missing library fails in a second
    config = read_json(run_dir / CONFIG)
    if not config:
        raise EvalError(f"{run_dir / CONFIG} is missing or unreadable")
    examples, source = run_examples(run_dir, config, data, fmt)
    if limit:
        examples = examples[:limit]
    if not examples:
        raise EvalError(f"no example with a user prompt and an assistant answer in {source}")
    cutoff = int(config.get("profile", {}).get("cutoff_len", 1024))
    with tempfile.TemporaryDirectory(prefix="tunedoc-eval-") as tmp:
        step, label = _copy_adapter(run_dir, Path(tmp) / "adapter")
        say(f"loading {config['model']} + {label} of {run_dir.name}")
        t0 = time.time()
        model, tok = load_run_model(run_dir, config, Path(tmp) / "adapter")
        return evaluate_loaded(model, tok, run_dir, examples, source, base=base, step=step, label=label,
                               max_new_tokens=max_new_tokens, batch_size=batch_size, cutoff_len=cutoff,
                               progress=say, emit=None if emit_event else False, t0=t0)


def evaluate_loaded(model, tok, run_dir: Path, examples: list[dict], data_desc: str, *, base: bool, step: int | None,
                    label: str, max_new_tokens: int = 128, batch_size: int = 8, cutoff_len: int = 1024,
                    progress=None, check=None, source: str = "tunedoc eval", emit=None,
                    t0: float | None = None) -> dict:
    """Score `examples` with a loaded peft model (and with `base`, the same weights with the adapter off), write
    RUN/eval/<time>/ and the `eval` event; returns the scores.json content. `tunedoc eval` loads the model first;
    the training process's closing eval passes the model it trained. `check` runs before every batch (see
    generate_batch). `emit`: a callable(type, **fields) that writes the event (the recipe's own writer); None opens
    the run's events.jsonl; False writes no event."""
    from tunedoc.trainer.events import EventWriter
    from tunedoc.trainer.rundir import EVENTS, write_json

    say = progress or (lambda msg: None)
    t0 = time.time() if t0 is None else t0
    say(f"generating {len(examples)} answers with the tuned model (batches of {batch_size})")
    tuned, tuned_answers = evaluate_model(model, tok, examples, max_new_tokens, batch_size, cutoff_len, check=check)
    base_scores, base_answers = None, None
    if base:
        say("generating the same answers with the base model alone (adapter off)")
        with model.disable_adapter():
            base_scores, base_answers = evaluate_model(model, tok, examples, max_new_tokens, batch_size, cutoff_len,
                                                       check=check)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = run_dir / EVAL_DIR / stamp
    n = 1
    while out_dir.exists():
        n += 1
        out_dir = run_dir / EVAL_DIR / f"{stamp}-{n}"
    out_dir.mkdir(parents=True)
    with open(out_dir / "examples.jsonl", "w", encoding="utf-8") as f:
        for i, ex in enumerate(examples):
            row = {"i": i, "source": ex["source"], "prompt": _last_user(ex["messages"]), "messages": ex["messages"],
                   "reference": ex["reference"], "tuned": tuned_answers[i],
                   "tuned_scores": tuned["per_example"][i]}
            if base_answers is not None:
                row.update(base=base_answers[i], base_scores=base_scores["per_example"][i])
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    result = {
        "run_id": run_dir.name, "step": step, "adapter": label, "data": data_desc, "n": len(examples),
        "time": stamp, "dir": str(out_dir), "elapsed_s": round(time.time() - t0, 2), "source": source,
        "max_new_tokens": max_new_tokens, "batch_size": batch_size, "decoding": "greedy",
        "tokenization": tuned["tokenization"], "tokenization_text": describe_tokenization(tuned["tokenization"]),
        "tuned": summary(tuned), "base": summary(base_scores),
    }
    write_json(out_dir / "scores.json", result)
    if emit is None:
        writer = EventWriter(run_dir / EVENTS)
        try:
            writer.emit("eval", **event_fields(result))
        finally:
            writer.close()
    elif emit is not False:
        emit("eval", **event_fields(result))
    return result


def event_fields(result: dict) -> dict:
    """An `eval` event (kind "generation") from a scores.json result. It has no `loss` field: the training curve's
    eval loss stays the recipe's own; this one is `eval_loss`."""
    tuned = result.get("tuned") or {}
    fields = {"kind": "generation", "step": result.get("step"), "n": result.get("n"),
              "source": result.get("source") or "tunedoc eval", "dir": result.get("dir"),
              "data": result.get("data"), "tokenization": result.get("tokenization")}
    for k in (*METRICS, "eval_loss", "perplexity"):
        if k in tuned:
            fields[k] = tuned[k]
    if result.get("base"):
        fields["base"] = {k: v for k, v in result["base"].items() if k in (*METRICS, "eval_loss", "perplexity")}
    return fields


def _last_user(messages: list[dict]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return str(m.get("content") or "")
    return str(messages[-1].get("content") or "") if messages else ""


def format_result(result: dict) -> str:
    """The table `tunedoc eval` prints."""
    cols = [("BLEU-4", "bleu4"), ("ROUGE-1", "rouge1"), ("ROUGE-2", "rouge2"), ("ROUGE-L", "rougeL"),
            ("exact", "exact_match"), ("eval loss", "eval_loss"), ("ppl", "perplexity")]
    lines = [f"eval of {result['run_id']} ({result['adapter']}, step {result.get('step')}) on {result['n']} "
             f"examples from {result['data']}",
             f"tokenization: {result['tokenization_text']}; greedy, max {result['max_new_tokens']} new tokens",
             f"{'':<8}" + "".join(f"{c:>11}" for c, _ in cols)]
    for name in ("base", "tuned"):
        s = result.get(name)
        if s:
            lines.append(f"{name:<8}" + "".join(f"{_n(s.get(k)):>11}" for _, k in cols))
    if result.get("base") and result.get("tuned"):
        b, t = result["base"], result["tuned"]
        lines.append(f"{'change':<8}" + "".join(
            f"{_n(t[k] - b[k], sign=True) if _isnum(t.get(k)) and _isnum(b.get(k)) else '-':>11}" for _, k in cols))
    lines.append(f"examples: {Path(result['dir']) / 'examples.jsonl'}")
    return "\n".join(lines)


def _isnum(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _n(x, sign: bool = False) -> str:
    if isinstance(x, str):
        return x
    if not _isnum(x):
        return "-"
    return f"{x:+.2f}" if sign else f"{x:.2f}"

