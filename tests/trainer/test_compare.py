"""`tunedoc compare` on three short runs of the tiny model (nf4 QLoRA, int8 LoRA, 16-bit LoRA)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.trainer.test_eval import train, tunedoc


@pytest.fixture(scope="module")
def three_runs(tiny_model_dir, identity_jsonl, tmp_path_factory):
    runs = tmp_path_factory.mktemp("compare-runs")
    ids = [train(tiny_model_dir, identity_jsonl, runs, q, f"quant={q}", steps=30) for q in ("nf4", "int8", "none")]
    out = tunedoc("eval", ids[0], "--runs-dir", runs, "--base", "--limit", "4", "--max-new-tokens", "24")
    assert out.returncode == 0, out.stderr[-3000:]
    return runs, ids


@pytest.mark.slow
def test_compare_prints_the_table_with_base_and_each_method(three_runs):
    runs, ids = three_runs
    out = tunedoc("compare", *ids, "--runs-dir", runs)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    for heading in ("method", "trainable params", "peak mem", "tokens/s", "train loss", "eval loss", "BLEU-4",
                    "ROUGE-L"):
        assert heading in lines[0]
    assert lines[1].startswith("base ")
    body = "\n".join(lines[2:5])
    for run_id, method in zip(ids, ("nf4 QLoRA", "int8 LoRA", "16-bit LoRA")):
        assert re.search(rf"^{run_id}\s+{method} r16 all-linear", body, re.M), out.stdout
    assert "*" in body

    rows = json.loads(tunedoc("compare", *ids, "--runs-dir", runs, "--json").stdout)
    assert [r["run"] for r in rows] == ["base", *ids]
    assert [r["quant"] for r in rows[1:]] == ["nf4", "int8", "none"]
    assert all(r["trainable"] > 0 and r["train_loss"] is not None and r["time_s"] for r in rows[1:])
    # the evaluated run has scores, the base row its own; best marks land on the best value of each column
    assert rows[1]["rougeL"] is not None and rows[0]["rougeL"] is not None
    for key, pick in (("train_loss", min), ("tokens_per_s", max), ("rougeL", max)):
        vals = [r[key] for r in rows if r[key] is not None]
        assert [r["run"] for r in rows if key in r["best"]] == [r["run"] for r in rows if r[key] == pick(vals)]

    md = tunedoc("compare", *ids, "--runs-dir", runs, "--markdown").stdout
    assert md.startswith("| run | method |") and md.count("\n| ") == 4 and "**" in md


@pytest.mark.slow
def test_html_page_is_self_contained(three_runs, tmp_path):
    runs, ids = three_runs
    page = tmp_path / "report.html"
    out = tunedoc("compare", *ids, "--runs-dir", runs, "--html", page)
    assert out.returncode == 0, out.stderr[-2000:]
    text = page.read_text(encoding="utf-8")
    assert "Plotly.newPlot('loss'" in text and all(i in text for i in ids)
    assert re.search(r"<script[^>]*\bsrc=", text) is None, "every script is inline"
    outside_scripts = re.sub(r"<script>.*?</script>", "", text, flags=re.S)
    assert re.search(r"https?://|//cdn|<link\b|@import|url\(", outside_scripts) is None
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs()[:2000] in text  # the chart library itself is in the page
