"""`tunedoc eval`: held-out answers from the base model and the tuned one, scored by sacrebleu and rouge-score (jieba
for Chinese), on a tiny model trained for a few seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunedoc.trainer.eval_metrics import score

SETS = ["quant=nf4", "lora_r=16", "lora_alpha=32", "lora_dropout=0.0",
        'lora_targets=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj","lm_head"]',
        "cutoff_len=256", "micro_batch=4", "grad_accum=1", "grad_ckpt=false", "lr=5e-3", "packing=true",
        "eval_split=0.2", "seed=0"]


def tunedoc(*args, timeout=240, env=None):
    return subprocess.run([sys.executable, "-m", "tunedoc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def train(model, data, runs, name, *sets, steps=80, detach=False):
    args = ["train", "--model", model, "--data", data, "--profile", "qlora-min", "--runs-dir", runs, "--name", name]
    for s in [*SETS, f"max_steps={steps}", *sets]:
        args += ["--set", s]
    out = tunedoc(*args, "--json", *(["--detach"] if detach else []))
    assert out.returncode == 0, out.stderr[-3000:]
    if detach:
        return json.loads(out.stdout.strip().splitlines()[-1])["run_dir"]
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return next(e for e in events if e["type"] == "start")["run_id"]


@pytest.fixture(scope="module")
def trained(tiny_model_dir, identity_jsonl, tmp_path_factory):
    runs = tmp_path_factory.mktemp("eval-runs")
    return runs, train(tiny_model_dir, identity_jsonl, runs, "nf4")


# --------------------------------------------------------------------------------------------------------- metrics
def test_scores_are_sacrebleu_and_rouge_score_on_the_same_strings():
    import sacrebleu
    from rouge_score import rouge_scorer

    preds = ["I am Tuna, an assistant made by tunedoc.", "The cat sat on the mat today", "nothing alike"]
    refs = ["I am Tuna, an assistant built by tunedoc.", "The cat sat on the mat", "I am Tuna."]
    got = score(preds, refs)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    rouge = [scorer.score(r, p) for p, r in zip(preds, refs)]
    bleu = [sacrebleu.sentence_bleu(p, [r]).score for p, r in zip(preds, refs)]
    assert got["bleu4"] == pytest.approx(sum(bleu) / 3, abs=1e-3)
    for k in ("rouge1", "rouge2", "rougeL"):
        assert got[k] == pytest.approx(100 * sum(x[k].fmeasure for x in rouge) / 3, abs=1e-3)
    assert got["tokenization"] == {"13a": 3}
    assert got["exact_match"] == 0
    assert score(["same"], ["same "])["exact_match"] == 100


def test_chinese_references_are_segmented_with_jieba():
    import jieba
    import sacrebleu
    from rouge_score import rouge_scorer

    pred, ref = "我是 Tuna,由 tunedoc 开发的人工智能助手。", "我是 Tuna,一个由 tunedoc 打造的人工智能助手。"
    got = score([pred], [ref])
    assert got["tokenization"] == {"jieba": 1}
    words = lambda s: [w for w in jieba.lcut(s) if w.strip()]  # noqa: E731
    want_bleu = sacrebleu.sentence_bleu(" ".join(words(pred)), [" ".join(words(ref))], tokenize="none").score
    assert got["bleu4"] == pytest.approx(want_bleu, abs=1e-3)

    class Jieba:
        def tokenize(self, text):
            return words(text)

    want = rouge_scorer.RougeScorer(["rougeL"], tokenizer=Jieba()).score(ref, pred)["rougeL"].fmeasure
    assert got["rougeL"] == pytest.approx(100 * want, abs=1e-3)
    # without segmentation rouge-score keeps only the ASCII words; the Chinese overlap would count for nothing
    plain = rouge_scorer.RougeScorer(["rougeL"]).score("我是一个助手", "我是一个助手")["rougeL"].fmeasure
    assert plain == 0 and score(["我是一个助手"], ["我是一个助手"])["rougeL"] == 100


def test_a_missing_metrics_library_gives_the_pip_command(tmp_path):
    blocker = tmp_path / "block" / "rouge_score"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named rouge_score')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker.parent}{os.pathsep}{Path(__file__).resolve().parents[2]}"}
    out = tunedoc("eval", "any-run", "--runs-dir", tmp_path, env=env, timeout=60)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "rouge-score" in out.stderr and "pip install" in out.stderr and "tunedoc[eval]" in out.stderr


# ------------------------------------------------------------------------------------------------------- real runs
@pytest.mark.slow
def test_tuned_model_beats_the_base_model_on_the_held_out_answers(trained):
    runs, run_id = trained
    out = tunedoc("eval", run_id, "--runs-dir", runs, "--base", "--max-new-tokens", "40", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout)
    base, tuned = res["base"], res["tuned"]
    assert res["n"] == 8  # eval_split 0.2 of the 40 identity conversations
    assert tuned["rougeL"] > base["rougeL"] + 10 and tuned["bleu4"] > base["bleu4"]
    assert tuned["eval_loss"] < base["eval_loss"] and tuned["perplexity"] < base["perplexity"]
    assert res["tokenization"].get("jieba", 0) + res["tokenization"].get("13a", 0) == 8
    # every prompt, reference and both answers are kept beside the scores
    rows = [json.loads(line) for line in (Path(res["dir"]) / "examples.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["prompt"] and r["reference"] and "base" in r and "tuned" in r for r in rows)
    assert json.loads((Path(res["dir"]) / "scores.json").read_text())["tuned"] == tuned
    # the held-out prompts are the ones the run did not train on
    from tunedoc.trainer.data import load_conversations
    from tunedoc.trainer.eval import held_out

    config = json.loads((runs / run_id / "config.json").read_text())
    held = held_out(load_conversations(config["data"]), 0.2, 0)
    assert [r["prompt"] for r in rows] == [c.messages[0]["content"] for c in held]
    # an eval event the screens read, with both sets of scores
    events = [json.loads(line) for line in (runs / run_id / "events.jsonl").read_text().splitlines()]
    # the recipe's own eval loss at the last step was taken on the same held-out examples with the same weights
    recipe_eval = [e for e in events if e["type"] == "eval" and "loss" in e][-1]
    assert recipe_eval["step"] == 80 and tuned["eval_loss"] == pytest.approx(recipe_eval["loss"], rel=0.02)
    ev = [e for e in events if e["type"] == "eval" and e.get("kind") == "generation"][-1]
    assert ev["rougeL"] == tuned["rougeL"] and ev["base"]["rougeL"] == base["rougeL"] and "loss" not in ev
    # the text form says what moved and how the text was tokenized
    text = tunedoc("eval", run_id, "--runs-dir", runs, "--base", "--limit", "3", "--max-new-tokens", "24")
    assert text.returncode == 0, text.stderr[-2000:]
    assert "change" in text.stdout and "tokenization:" in text.stdout and "on 3 examples" in text.stdout


@pytest.mark.slow
def test_other_data_files_and_runs_without_held_out_data(trained, tmp_path):
    runs, run_id = trained
    data = tmp_path / "extra.json"  # alpaca, a format the run did not train on
    data.write_text(json.dumps([{"instruction": "Who are you?", "input": "", "output": "I am Tuna."},
                                {"instruction": "你是谁?", "input": "", "output": "我是 Tuna,由 tunedoc 开发的助手。"}],
                               ensure_ascii=False))
    out = tunedoc("eval", run_id, "--runs-dir", runs, "--data", data, "--max-new-tokens", "24", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout)
    assert res["n"] == 2 and res["tokenization"] == {"13a": 1, "jieba": 1} and res["base"] is None
    # a run that held nothing out says what to do
    config = json.loads((runs / run_id / "config.json").read_text())
    other = runs / "20990101-000000-noeval"
    other.mkdir()
    config["profile"]["eval_split"] = 0.0
    (other / "config.json").write_text(json.dumps(config))
    (other / "status.json").write_text(json.dumps({"status": "completed"}))
    out = tunedoc("eval", other, "--runs-dir", runs)
    assert out.returncode == 2 and "--data FILE" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_eval_of_a_run_still_training_reads_its_latest_checkpoint_and_leaves_it_running(
        tiny_model_dir, identity_jsonl, tmp_path):
    run_dir = Path(train(tiny_model_dir, identity_jsonl, tmp_path, "live", "save_every=10", steps=100000,
                         detach=True))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not list((run_dir / "checkpoints").glob("step-*/adapter_config.json")):
            time.sleep(0.3)
        assert list((run_dir / "checkpoints").glob("step-*")), (run_dir / "trainer.log").read_text()[-2000:]
        out = tunedoc("eval", run_dir.name, "--runs-dir", tmp_path, "--limit", "4", "--max-new-tokens", "16",
                      "--json")
        assert out.returncode == 0, out.stderr[-3000:]
        res = json.loads(out.stdout)
        assert res["adapter"].startswith("checkpoint step-") and res["step"] % 10 == 0
        status = json.loads((run_dir / "status.json").read_text())
        assert status["status"] == "running" and status["step"] > res["step"]  # it went on training meanwhile
    finally:
        tunedoc("stop", run_dir.name, "--runs-dir", tmp_path, "--wait", timeout=120)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert events[-1]["type"] == "done" and events[-1]["status"] == "stopped"
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps == list(range(1, len(steps) + 1))  # no step lost or repeated around the eval
    assert any(e["type"] == "eval" and e.get("kind") == "generation" for e in events)
