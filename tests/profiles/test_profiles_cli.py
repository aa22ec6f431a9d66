import json

import pytest
from profile_configs import CONFIGS

from tunedoc.cli import main

LLAMA = str(CONFIGS / "llama-3.1-8b.json")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_profiles_lists_the_builtins(capsys):
    code, out, _ = run(capsys, "profiles")
    assert code == 0
    for name in ("qlora-min", "qlora-balanced", "qlora-long", "lora-8bit", "lora-16bit"):
        assert name in out
    code, out, _ = run(capsys, "profiles", "--json")
    assert {p["name"] for p in json.loads(out)} >= {"qlora-min", "lora-16bit"}


def test_estimate_prints_breakdown_bar_and_assumptions(capsys):
    code, out, _ = run(capsys, "estimate", "--model", LLAMA, "--profile", "qlora-min", "--set", "cutoff_len=2048",
                       "--set", "loss_impl=plain")
    assert code == 0
    assert "logits and loss" in out and "assumptions:" in out and "2048 tokens" in out
    bar = next(l for l in out.splitlines() if l.strip().startswith("["))
    assert len(bar.strip()) == 62 and "L" in bar  # 60 glyphs: the loss is a visible share


def test_estimate_json_contract(capsys):
    code, out, _ = run(capsys, "estimate", "--model", LLAMA, "--seq", "512", "--json")
    data = json.loads(out)
    assert code == 0
    assert {"total_gb", "breakdown", "assumptions", "unit", "kind"} <= set(data)
    assert data["unit"] == "GiB" and data["kind"] == "reserved" and data["details"]["seq"] == 512
    assert sum(data["breakdown"].values()) == pytest.approx(data["total_gb"], abs=0.01)


@pytest.mark.parametrize("argv,message", [
    (["estimate", "--model", "/nope/config.json"], "no such file"),
    (["estimate", "--model", LLAMA, "--set", "quant=fp8"], "quant='fp8' is not valid"),
    (["estimate", "--model", LLAMA, "--profile", "qlora-tiny"], "no profile named 'qlora-tiny'"),
    (["fit", "--model", LLAMA, "--vram", "-3"], "must be a positive"),
])
def test_bad_input_exits_2_with_the_fix(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err and out == ""


def test_unsupported_architecture(capsys, tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "gpt2", "hidden_size": 768}))
    code, _, err = run(capsys, "estimate", "--model", str(cfg))
    assert code == 2 and "not supported" in err and "qwen2" in err


def test_fit_ranks_and_explains(capsys):
    code, out, _ = run(capsys, "fit", "--model", str(CONFIGS / "qwen2.5-7b.json"), "--vram", "12")
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split()[:2] == ["fits", "qlora-long"]  # most tokens per step first; offload makes it fit
    assert "fits with" in out and "GiB over" in out
    code, out, _ = run(capsys, "fit", "--model", str(CONFIGS / "qwen2.5-7b.json"), "--vram", "12", "--json")
    data = json.loads(out)
    assert data["results"][0]["fits"] and not data["results"][-1]["fits"]


def test_fit_without_a_card_asks_for_one(capsys, monkeypatch):
    import tunedoc.profiles.cli as cli

    monkeypatch.setattr(cli, "_probed_gpu", lambda: (None, None, "no GPU to fit on this machine (no NVIDIA GPU "
                                                                  "was found); pass --gpu NAME or --vram GB"))
    code, out, err = run(capsys, "fit", "--model", LLAMA)
    assert code == 2 and "--vram" in err


def test_commands_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from tunedoc.cli import main; main(['estimate','--model',%r,'--json']); "
            "sys.stderr.write(str('torch' in sys.modules))") % LLAMA
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr.strip().endswith("False")
