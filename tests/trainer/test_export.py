"""Export: the PEFT adapter and a merged 16-bit model, each loaded back with plain transformers (+ peft for the
adapter) in a fresh interpreter that never imports tunedoc; and chat on the run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


def tunedoc(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "tunedoc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def trained_run(tiny_model_dir, identity_jsonl, tmp_path_factory):
    runs = tmp_path_factory.mktemp("export-runs")
    out = tunedoc("train", "--model", tiny_model_dir, "--data", identity_jsonl, "--profile", "qlora-min",
                  "--runs-dir", runs, "--json", "--set", "quant=nf4", "--set", "max_steps=6", "--set", "lr=3e-3",
                  "--set", "cutoff_len=128", "--set", "micro_batch=2", "--set", "grad_accum=1")
    assert out.returncode == 0, out.stderr[-2000:]
    done = json.loads(out.stdout.splitlines()[-1])
    return runs, Path(done["adapter"]).parent


# Runs in a clean interpreter: only transformers/peft/torch, no tunedoc module on the path.
LOAD = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
base, adapter, merged = sys.argv[1:4]
assert "trainer" not in sys.modules and "tunedoc" not in sys.modules
tok = AutoTokenizer.from_pretrained(merged)
ids = tok("I am a test sentence for the export", return_tensors="pt")["input_ids"]
m = AutoModelForCausalLM.from_pretrained(merged)
dtype = str(next(m.parameters()).dtype)
with torch.no_grad():
    merged_logits = m(ids.clone()).logits.float()
from peft import PeftModel
b = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
with torch.no_grad():
    base_logits = b(ids.clone()).logits
p = PeftModel.from_pretrained(b, adapter)
with torch.no_grad():
    peft_logits = p(ids.clone()).logits
print(json.dumps({"dtype": dtype,
                  "merged_vs_peft": (merged_logits - peft_logits).abs().max().item(),
                  "peft_vs_base": (peft_logits - base_logits).abs().max().item(),
                  "scale": peft_logits.abs().max().item()}))
"""


@pytest.mark.slow
def test_adapter_and_merged_exports_load_with_plain_transformers(trained_run, tiny_model_dir, tmp_path):
    runs, run_dir = trained_run
    out = tunedoc("export", run_dir.name, "--runs-dir", runs, "--out", tmp_path / "adapter out", "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    adapter = Path(res["path"])
    assert res["kind"] == "adapter" and (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()

    out = tunedoc("export", run_dir.name, "--runs-dir", runs, "--merge", "--json", "--dtype", "fp16")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    merged = Path(res["path"])
    assert merged == run_dir / "merged" and res["dtype"] == "float16"
    cfg = json.loads((merged / "config.json").read_text())
    assert "quantization_config" not in cfg, "a merged model must not need bitsandbytes"
    assert list(merged.glob("*.safetensors")) and (merged / "tokenizer_config.json").is_file()

    check = subprocess.run([sys.executable, "-I", "-c", LOAD, str(tiny_model_dir), str(adapter), str(merged)],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert check.returncode == 0, check.stderr[-2000:]
    r = json.loads(check.stdout.strip().splitlines()[-1])
    assert r["dtype"] == "torch.float16"
    assert r["peft_vs_base"] > 1e-3, "the adapter changed nothing: nothing was trained"
    assert r["merged_vs_peft"] < 0.02 * max(1.0, r["scale"]), r  # fp16 rounding only


def test_export_of_a_run_without_adapter_says_what_to_do(tmp_path):
    run = tmp_path / "r1"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "x", "profile": {"name": "p"}}))
    (run / "status.json").write_text(json.dumps({"status": "running", "pid": 0}))
    out = tunedoc("export", str(run), timeout=60)
    assert out.returncode == 1 and "no adapter or checkpoint yet" in out.stderr


@pytest.mark.slow
def test_chat_answers_from_the_run(trained_run):
    runs, run_dir = trained_run
    out = tunedoc("chat", run_dir.name, "--runs-dir", runs, "--prompt", "Who are you?", "--json",
                  "--max-new-tokens", "8")
    assert out.returncode == 0, out.stderr[-2000:]
    reply = json.loads(out.stdout)
    assert reply["prompt"] == "Who are you?" and isinstance(reply["reply"], str)
    assert "loaded run" in out.stderr


def _run_with_adapter(tmp_path: Path) -> Path:
    """A run directory with a (fake) final adapter: exporting the adapter copies files and needs no torch."""
    run = tmp_path / "runs" / "r2"
    (run / "adapter").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": "base-model", "profile": {"name": "p"}}))
    (run / "status.json").write_text(json.dumps({"status": "done", "pid": 0}))
    (run / "adapter" / "adapter_config.json").write_text("{}")
    (run / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    return run


def test_export_into_a_folder_with_the_users_files_changes_nothing(tmp_path):
    run = _run_with_adapter(tmp_path)
    home = tmp_path / "my models"
    home.mkdir()
    (home / "notes.txt").write_text("my notes")
    (home / "other-model").mkdir()
    out = tunedoc("export", str(run), "--out", home, timeout=60)
    assert out.returncode == 1 and "not written by `tunedoc export`" in out.stderr, out.stderr
    assert (home / "notes.txt").read_text() == "my notes" and (home / "other-model").is_dir()
    assert sorted(p.name for p in home.iterdir()) == ["notes.txt", "other-model"]
    # --force does not change that: it only replaces an earlier export
    out = tunedoc("export", str(run), "--out", home, "--force", timeout=60)
    assert out.returncode == 1 and (home / "notes.txt").read_text() == "my notes"
    # the suggested subfolder works
    out = tunedoc("export", str(run), "--out", home / "r2-adapter", "--json", timeout=60)
    assert out.returncode == 0, out.stderr
    assert (home / "r2-adapter" / "adapter_model.safetensors").read_bytes() == b"weights"
    assert (home / "notes.txt").read_text() == "my notes"


def test_export_replaces_an_earlier_export_only_with_force(tmp_path):
    run = _run_with_adapter(tmp_path)
    out_dir = tmp_path / "exported"
    assert tunedoc("export", str(run), "--out", out_dir, timeout=60).returncode == 0
    (run / "adapter" / "adapter_model.safetensors").write_bytes(b"newer weights")
    again = tunedoc("export", str(run), "--out", out_dir, timeout=60)
    assert again.returncode == 1 and "--force" in again.stderr
    assert (out_dir / "adapter_model.safetensors").read_bytes() == b"weights"
    forced = tunedoc("export", str(run), "--out", out_dir, "--force", timeout=60)
    assert forced.returncode == 0, forced.stderr
    assert (out_dir / "adapter_model.safetensors").read_bytes() == b"newer weights"
    # the run's own default folder is the run's: exporting twice just refreshes it
    assert tunedoc("export", str(run), timeout=60).returncode == 0
    assert tunedoc("export", str(run), timeout=60).returncode == 0
    assert (run / "adapter-export" / "adapter_model.safetensors").is_file()


def test_export_refuses_a_file_and_the_run_itself(tmp_path):
    run = _run_with_adapter(tmp_path)
    f = tmp_path / "a-file"
    f.write_text("keep me")
    out = tunedoc("export", str(run), "--out", f, timeout=60)
    assert out.returncode == 1 and f.read_text() == "keep me"
    for target in (run, run.parent):
        out = tunedoc("export", str(run), "--out", target, timeout=60)
        assert out.returncode == 1, target
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
