"""LLaMA-Factory SFT configs in and out, on its own example configs (tests/trainer/fixtures/llamafactory/examples):
train --config, estimate/fit --config (the model's config.json from a local Hub cache, no network), the unused
keys named, errors for keys that change the result, file:line for bad YAML, and the round trip through export."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tunedoc.trainer.llamafactory import TABLE, ConfigError, read_config, to_config

LF = Path(__file__).parent / "fixtures" / "llamafactory"
EX = LF / "examples"
OTFQ = EX / "train_qlora" / "qwen3_lora_sft_otfq.yaml"
LORA = EX / "train_lora" / "qwen3_lora_sft.yaml"
ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> Path:
    """A Hugging Face cache holding Qwen/Qwen3-4B-Instruct-2507's config.json only, as `tunedoc download` leaves
    one: estimate/fit read it offline."""
    cache = tmp_path_factory.mktemp("hub")
    repo = cache / "models--Qwen--Qwen3-4B-Instruct-2507"
    (repo / "snapshots" / "0").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0")
    shutil.copy(LF / "models" / "Qwen3-4B-Instruct-2507" / "config.json", repo / "snapshots" / "0" / "config.json")
    return cache


def tunedoc(*args, cwd=LF, env=None, timeout=300):
    full = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "tunedoc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=full)


# ---------------------------------------------------------------------------------------------------------------
# in


@pytest.mark.parametrize("path", sorted(p.relative_to(EX) for p in EX.glob("*/*.yaml") if "qwen3vl" not in p.name))
def test_every_text_sft_example_loads_with_its_unused_keys_named(path):
    imp = read_config(EX / path)
    assert imp.errors == []
    assert imp.dataset == ["identity", "alpaca_en_demo"] and imp.max_samples == 1000
    assert {"output_dir", "report_to"} <= set(imp.ignored)
    # their templates (qwen3_nothink, llama3) are their models' own chat formats: checked, not refused
    assert imp.template in ("qwen3_nothink", "llama3") and imp.template_error is None


def test_the_otfq_example_becomes_the_profile_llamafactory_would_train():
    imp = read_config(OTFQ)
    p = imp.profile()
    assert imp.model == "Qwen/Qwen3-4B-Instruct-2507"
    assert (p.quant, p.lora_r, p.lora_alpha, p.lora_dropout, p.lora_targets) == ("nf4-dq", 8, 16, 0.0, "all-linear")
    assert (p.cutoff_len, p.micro_batch, p.grad_accum, p.lr, p.epochs) == (2048, 1, 8, 1e-4, 3.0)
    assert (p.scheduler, p.warmup, p.precision, p.packing, p.save_every) == ("cosine", 0.1, "bf16", False, 500)
    assert imp.data_dir() == LF / "data"  # examples/train_qlora/ -> the data/ folder two levels up
    # the 16-bit LoRA example has no quantization_bit; the NPU one turns double quantization off
    assert read_config(LORA).profile().quant == "none"
    assert read_config(EX / "train_qlora" / "qwen3_lora_sft_bnb_npu.yaml").profile().quant == "nf4"


def test_keys_that_change_the_result_are_errors_and_unknown_keys_are_named(tmp_path):
    cfg = tmp_path / "dpo.yaml"
    cfg.write_text(OTFQ.read_text().replace("stage: sft", "stage: dpo") + "finetuning_type: full\n"
                   "use_dora: true\nmy_own_key: 3\nuse_rslora: false\n")
    imp = read_config(cfg)
    assert any(e.startswith("stage: dpo") for e in imp.errors)
    assert any(e.startswith("finetuning_type: full") for e in imp.errors)
    assert any(e.startswith("use_dora: True: DoRA") for e in imp.errors)
    assert imp.unknown == ["my_own_key"] and "use_rslora" in imp.ignored
    assert read_config(EX / "train_lora" / "qwen3vl_lora_sft.yaml").errors == [
        "image_max_pixels: 262144: tunedoc trains text-only models"]
    runs = tmp_path / "runs"
    r = tunedoc("train", "--config", cfg, "--runs-dir", runs)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "stage: dpo" in r.stderr and "finetuning_type: full" in r.stderr and "my_own_key" in r.stderr
    assert not runs.exists() or not [d for d in runs.iterdir() if not d.name.startswith(".")]


def test_malformed_yaml_gives_file_line_and_column(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model_name_or_path: Qwen/Qwen3-4B\nlora_rank: 8\nlora_target: [q_proj, v_proj\ncutoff_len: 1\n")
    with pytest.raises(ConfigError) as e:
        read_config(cfg)
    assert str(e.value).startswith(f"{cfg}:4:")
    for cmd in ("train", "estimate", "fit"):
        r = tunedoc(cmd, "--config", cfg, *(["--vram", "24"] if cmd == "fit" else []))
        assert r.returncode == 2 and f"{cfg}:4:" in r.stderr and "Traceback" not in r.stderr, (cmd, r.stderr)


def test_train_dry_run_prints_the_profile_with_set_overrides_and_fills_the_identity(tmp_path):
    runs = tmp_path / "runs"
    r = tunedoc("train", "--config", OTFQ, "--dry-run", "--runs-dir", runs, "--set", "lr=3e-4",
                "--set", "identity_name=Tuna", "--set", "identity_author=ACME")
    assert r.returncode == 0, r.stderr
    assert "qwen3_lora_sft_otfq.yaml (LLaMA-Factory) became:" in r.stderr
    assert "lora_r = 8  # lora_rank" in r.stderr and "template = qwen3_nothink  # the model's own" in r.stderr
    assert "lr = 0.0003" in r.stdout and 'quant = "nf4-dq"' in r.stdout and 'precision = "bf16"' in r.stdout
    assert "data: 96 conversations from identity, alpaca_en_demo" in r.stderr
    prepared = next((runs / ".prepared").glob("identity+alpaca_en_demo-*.jsonl"))
    text = prepared.read_text(encoding="utf-8")
    assert "I am Tuna, an AI assistant developed by ACME" in text and "{{name}}" not in text
    # without the fills, the placeholders stop it before anything starts
    r = tunedoc("train", "--config", OTFQ, "--dry-run", "--runs-dir", runs)
    assert r.returncode == 2 and "unfilled placeholders {{name}}, {{author}}" in r.stderr


def test_a_tiny_run_from_a_llamafactory_config(tiny_model_dir, tmp_path):
    runs = tmp_path / "runs"
    r = tunedoc("train", "--config", OTFQ, "--model", tiny_model_dir, "--runs-dir", runs, "--set", "max_steps=2",
                "--set", "quant=none", "--set", "precision=fp32", "--set", "identity_name=Tuna",
                "--set", "identity_author=ACME", "--json", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    done = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert done[-1]["type"] == "done" and done[-1]["status"] == "completed"
    run_dir = next(d for d in runs.iterdir() if not d.name.startswith("."))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["llamafactory"]["dataset"] == ["identity", "alpaca_en_demo"]
    assert config["profile"]["lora_r"] == 8 and config["profile"]["grad_accum"] == 8
    # and out again: the export names the same data sets and settings
    r = tunedoc("export", run_dir.name, "--runs-dir", runs, "--llamafactory")
    assert r.returncode == 0, r.stderr
    back = read_config(Path(r.stdout.strip()))
    assert back.dataset == ["identity", "alpaca_en_demo"] and back.max_samples == 1000
    assert back.profile().lora_r == 8 and back.profile().quant == "none"
    assert back.template == "qwen3_nothink"


# ---------------------------------------------------------------------------------------------------------------
# will it fit?


@pytest.mark.parametrize("cfg", [OTFQ, LORA, EX / "train_qlora" / "qwen3_lora_sft_bnb_npu.yaml"])
def test_estimate_config_answers_without_the_network(cfg, hub_cache):
    r = tunedoc("estimate", "--config", cfg, "--gpu", "RTX 3060", "--json", env={"HF_HUB_CACHE": str(hub_cache)})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["details"]["profile"] == cfg.stem and out["details"]["seq"] == 2048
    assert "not used" in r.stderr and "template" in r.stderr
    q = read_config(cfg).profile().quant
    assert (out["breakdown"]["quantized_weights"] > 0) == (q != "none")


def test_fit_config_writes_the_changes_back_as_yaml_keys_that_then_fit(hub_cache, tmp_path):
    env = {"HF_HUB_CACHE": str(hub_cache)}
    r = tunedoc("fit", "--config", LORA, "--vram", "8", "--json", env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["results"][0]["fits"] is False
    keys = out["yaml_changes"]
    assert keys and all(not k.startswith("#") for k in keys), keys
    # paste them into the config: now it fits
    pasted = tmp_path / LORA.name
    pasted.write_text(LORA.read_text() + "".join(f"{k}: {json.dumps(v)}\n" for k, v in keys.items()))
    r = tunedoc("fit", "--config", pasted, "--vram", "8", "--json", env=env)
    assert json.loads(r.stdout)["results"][0]["fits"] is True, r.stdout
    r = tunedoc("fit", "--config", LORA, "--vram", "8", env=env)
    assert f"in {LORA}:" in r.stdout
    assert all(f"    {k}: {str(v).lower() if isinstance(v, bool) else v}" in r.stdout for k, v in keys.items())


def test_the_gptq_example_is_estimated_as_stored_and_not_trained(tmp_path):
    """examples/train_qlora/llama3_lora_sft_gptq.yaml: LLaMA-Factory trains LoRA on the GPTQ kernels; tunedoc
    estimates that (4-bit weights, fp16 scales per group of 128) and says in one sentence that it cannot train it."""
    cache = tmp_path / "hub"
    repo = cache / "models--TechxGenus--Meta-Llama-3-8B-Instruct-GPTQ"
    (repo / "snapshots" / "0").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0")
    shutil.copy(LF / "models" / "Meta-Llama-3-8B-Instruct-GPTQ" / "config.json", repo / "snapshots" / "0")
    gptq = EX / "train_qlora" / "llama3_lora_sft_gptq.yaml"
    env = {"HF_HUB_CACHE": str(cache)}
    r = tunedoc("estimate", "--config", gptq, "--json", env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    linear = 32 * (4096 * (4096 + 2 * 1024 + 4096) + 3 * 4096 * 14336)
    assert out["breakdown"]["quantized_weights"] == pytest.approx(linear * 0.5 / 2**30, abs=1e-3)
    assert out["details"]["prequantized"]["method"] == "gptq"
    assert "`tunedoc train` cannot train TechxGenus/Meta-Llama-3-8B-Instruct-GPTQ, a pre-quantized GPTQ 4-bit" \
        in r.stderr and r.stderr.count("cannot train") == 1
    assert out["total_gb"] < 12  # not the 16-bit figure (about 20 GiB of weights alone)
    r = tunedoc("train", "--config", gptq, "--dry-run", "--runs-dir", tmp_path / "runs", "--set", "identity_name=T",
                "--set", "identity_author=A", env=env)
    assert r.returncode == 2 and "is a pre-quantized GPTQ 4-bit, group size 128 checkpoint" in r.stderr, r.stderr


# ---------------------------------------------------------------------------------------------------------------
# out


def test_round_trip_keeps_every_supported_key(tmp_path):
    from tunedoc.trainer.launch import build_config

    for cfg in (OTFQ, LORA, EX / "train_qlora" / "qwen3_lora_sft_bnb_npu.yaml"):
        imp = read_config(cfg)
        toml = tmp_path / f"{cfg.stem}.toml"
        toml.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in imp.profile().to_dict().items()))
        run = build_config(imp.model, str(LF / "data"), str(toml), [], "auto", None)
        run["llamafactory"] = {"dataset": imp.dataset, "dataset_dir": imp.dataset_dir, "max_samples": imp.max_samples,
                               "template": imp.template}
        text, entries = to_config(run)
        out = tmp_path / f"{cfg.stem}.out.yaml"
        out.write_text(text)
        back = read_config(out)
        assert back.errors == [] and back.unknown == [] and entries == {}
        assert (back.model, back.dataset, back.dataset_dir, back.max_samples) == (
            imp.model, imp.dataset, imp.dataset_dir, imp.max_samples)
        assert back.fields == imp.fields and back.template == imp.template
        import yaml

        src, again = yaml.safe_load(cfg.read_text()), yaml.safe_load(text)
        for row in TABLE:  # every supported key the config sets comes back with its value
            if row.key in src:
                assert again[row.key] == src[row.key], row.key


def test_export_of_a_plain_data_file_writes_a_dataset_info_entry(tmp_path, identity_jsonl):
    from tunedoc.trainer.data import load_conversations
    from tunedoc.trainer.launch import build_config

    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    cfg = build_config("some/model", str(identity_jsonl), "qlora-min", ["lr=1e-4", "quant=nf4"], "auto", None)
    (run_dir / "config.json").write_text(json.dumps(cfg))
    (run_dir / "status.json").write_text(json.dumps({"status": "completed"}))
    r = tunedoc("export", "r1", "--runs-dir", tmp_path / "runs", "--llamafactory", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    info = json.loads(Path(res["dataset_info"]).read_text())
    back = read_config(res["path"])
    assert back.dataset == list(info) and back.data_dir() == Path(res["dataset_info"]).parent
    assert back.profile().lr == 1e-4 and back.profile().quant == "nf4"
    # LLaMA-Factory's reader of that entry (sharegpt with openai tags) is ours too: the same conversations
    entry = info[back.dataset[0]]
    assert entry["formatting"] == "sharegpt" and entry["tags"]["role_tag"] == "role"
    assert len(load_conversations(Path(res["dataset_info"]).parent, datasets=back.dataset)) == \
        len(load_conversations(identity_jsonl))
    r = tunedoc("export", "r1", "--runs-dir", tmp_path / "runs", "--llamafactory")
    assert r.returncode == 1 and "--force" in r.stderr


# ---------------------------------------------------------------------------------------------------------------
# template: LLaMA-Factory's prompt format must be the model's own chat template, which tunedoc trains in


def test_a_template_that_is_no_chat_format_is_refused_before_anything_starts(tmp_path):
    runs = tmp_path / "runs"
    for name, shown in (("alpaca", "### Instruction:"), ("default", "Human: "), ("empty", "no role markers")):
        cfg = tmp_path / f"{name}.yaml"
        cfg.write_text(OTFQ.read_text().replace("template: qwen3_nothink", f"template: {name}"))
        imp = read_config(cfg)
        assert imp.errors == [] and imp.template_error.startswith(f"template: {name}: LLaMA-Factory would format")
        assert shown in imp.template_error and "remove `template:`" in imp.template_error
        r = tunedoc("train", "--config", cfg, "--runs-dir", runs, "--set", "identity_name=T",
                    "--set", "identity_author=A")
        assert r.returncode == 2 and f"template: {name}: LLaMA-Factory would format" in r.stderr, r.stderr
        # the memory does not depend on it: estimate still answers, and says it
        assert f"template: {name}: LLaMA-Factory would format" in tunedoc("estimate", "--config", cfg).stderr
    assert not runs.exists() or not [d for d in runs.iterdir() if not d.name.startswith(".")]
    cfg = tmp_path / "mine.yaml"
    cfg.write_text(OTFQ.read_text().replace("template: qwen3_nothink", "template: my_own"))
    assert "cannot tell whether" in read_config(cfg).template_error


def test_a_named_template_is_checked_against_the_models_chat_template(tiny_model_dir, tmp_path, identity_jsonl):
    from tunedoc.trainer.llamafactory import template_problem

    # the tiny model's chat template is ChatML (<|im_start|>): qwen3_nothink is its format, llama3 is not
    runs = tmp_path / "runs"
    sets = ["--set", "identity_name=T", "--set", "identity_author=A"]
    r = tunedoc("train", "--config", OTFQ, "--model", tiny_model_dir, "--dry-run", "--runs-dir", runs, *sets)
    assert r.returncode == 0, r.stderr
    cfg = tmp_path / "llama3.yaml"
    cfg.write_text(OTFQ.read_text().replace("template: qwen3_nothink", "template: llama3"))
    r = tunedoc("train", "--config", cfg, "--model", tiny_model_dir, "--dry-run", "--runs-dir", runs, *sets)
    assert r.returncode == 2 and "template: llama3: LLaMA-Factory's llama3 prompts use <|start_header_id|>" \
        in r.stderr, r.stderr
    # a base model without a chat template cannot be trained in any named format
    assert "has no chat template" in template_problem("qwen3", None, "Qwen/Qwen3-4B-Base")
    assert template_problem("chatml", "{{ '<|im_start|>' }}") is None and template_problem(None, None) is None
