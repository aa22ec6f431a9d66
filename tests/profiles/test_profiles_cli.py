import json
from pathlib import Path

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

    monkeypatch.setattr(cli, "_probed_gpus", lambda: ([], "no GPU to fit on this machine (no NVIDIA GPU "
                                                          "was found); pass --gpu NAME or --vram GB"))
    code, out, err = run(capsys, "fit", "--model", LLAMA)
    assert code == 2 and "--vram" in err


QWEN7 = str(CONFIGS / "qwen2.5-7b.json")


def test_fit_on_mixed_gpus_per_gpu_the_smallest_decides(capsys):
    from tunedoc.profiles.estimate import estimate
    from tunedoc.profiles.fit import default_margin
    from tunedoc.profiles.multi import per_gpu
    from tunedoc.profiles.profile import load_profile

    code, out, _ = run(capsys, "fit", "--model", QWEN7, "--gpu", "RTX 4090", "--gpu", "RTX 3060", "--json")
    data = json.loads(out)
    assert code == 0 and data["gpus"] == 2 and data["strategy"] == "ddp"
    assert "3060" in data["decides"]["name"] and data["decides"]["index"] == 1 and data["vram_gb"] == 12
    budget = 12 - default_margin(12)
    config = json.loads(Path(QWEN7).read_text())
    for r in data["results"]:
        one = estimate(config, load_profile(r["profile"]), gpu=data["decides"]["name"])
        assert r["total_gb"] == pytest.approx(per_gpu(one, 2).total_gb, abs=1e-3)  # the per-GPU figure
        assert r["fits"] == (r["total_gb"] <= budget)
        assert sum(r["per_gpu"].values()) == pytest.approx(r["total_gb"], abs=0.01)
        assert r["per_gpu"]["communication"] == pytest.approx(r["estimate"]["breakdown"]["ddp_buckets"]
                                                              + r["estimate"]["breakdown"]["nccl_buffers"], abs=2e-3)
    fits = {r["profile"]: r["fits"] for r in data["results"]}
    assert not fits["lora-8bit"]  # 13+ GiB per GPU: the 3060 decides
    code, out, _ = run(capsys, "fit", "--model", QWEN7, "--gpu", "RTX 4090", "--json")
    assert {r["profile"]: r["fits"] for r in json.loads(out)["results"]}["lora-8bit"]  # the 4090 alone takes it
    code, out, _ = run(capsys, "fit", "--model", QWEN7, "--gpu", "RTX 4090", "--gpu", "RTX 3060")
    head = out.splitlines()[0]
    assert "2 GPUs (ddp)" in head and "the smallest decides: GPU 1 GeForce RTX 3060" in head
    assert "replicated" in out and "per rank" in out and "communication" in out


def test_fit_on_this_machine_takes_every_gpu_as_train_does(capsys, monkeypatch):
    import tunedoc.profiles.cli as cli
    from tunedoc.profiles.fit import Card

    cards = [Card("NVIDIA GeForce RTX 5060 Ti", 15.5, 0), Card("NVIDIA GeForce RTX 5060 Ti", 15.3, 1)]
    monkeypatch.setattr(cli, "_probed_gpus", lambda: (cards, None))
    code, out, err = run(capsys, "fit", "--model", QWEN7, "--json")
    data = json.loads(out)
    assert code == 0 and data["gpus"] == 2 and data["decides"] == {"index": 1, "name": cards[1].name, "free_gb": 15.3}
    assert "all 2 GPUs of this machine" in err and "--gpus 1" in err
    code, out, err = run(capsys, "fit", "--model", QWEN7, "--gpus", "1", "--json")
    data = json.loads(out)
    assert data["gpus"] == 1 and data["vram_gb"] == 15.5 and "ddp_buckets" not in data["results"][0]["estimate"]["breakdown"]
    assert err == ""
    code, out, err = run(capsys, "fit", "--model", QWEN7, "--gpus", "1,", "--json")  # GPU 1 alone, as train --gpus 1,
    assert json.loads(out)["decides"]["index"] == 1


@pytest.mark.parametrize("argv,message", [
    (["--vram", "12", "--gpus", "0,2"], "give a count of such cards"),
    (["--gpu", "RTX 4090", "--gpu", "RTX 3060", "--gpus", "0,5"], "GPU 1 GeForce RTX 3060"),
    (["--vram", "12", "--gpus", "2", "--strategy", "zero3"], "strategy 'zero3'"),
])
def test_fit_gpus_errors_name_the_cards(capsys, argv, message):
    code, out, err = run(capsys, "fit", "--model", QWEN7, *argv)
    assert code == 2 and message in err and out == ""


def test_commands_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys; from tunedoc.cli import main; main(['estimate','--model',%r,'--json']); "
            "sys.stderr.write(str('torch' in sys.modules))") % LLAMA
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr.strip().endswith("False")
