"""`--strategy fsdp`: FSDP2 (torch's fully_shard) shards the tiny QLoRA model over two CPU processes on gloo.

torch 2.13 runs FSDP2 on the CPU with gloo, and bitsandbytes' CPU 4-bit kernels take weights packed in fp32
(`bnb_4bit_quant_storage`, the compute dtype there), so the real FSDP-QLoRA path is what the slow tests train: the
2-rank fsdp curve equals the 1-rank curve with the same global batch (tolerance 1e-4: the same rows per step, the
gradients reduce-scattered in another order; measured agreement is about 1e-6), a stop and --resume continue it,
and the adapter it saves is the same files as a one-process run's, loading on the plain base model. The load is
the low-memory one (rank 0 reads the model, rank 1 builds it on the meta device and receives only its shards and the
4-bit constants); the simple path (every rank loads the whole model) trains the same curve. What needs
CUDA (bf16 storage and mixed precision, the fp16 scaler) is checked through the plan."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunedoc.trainer.fsdp import FsdpUnsupported, plan
from tunedoc.trainer.launch import plan_launch, resolve_strategy

from test_distributed import losses, train as distributed_train  # the same harness, this file's COMMON

LLAMA2_70B = Path(__file__).parents[1] / "profiles" / "configs" / "llama-2-70b.json"


def tunedoc(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "tunedoc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


# ------------------------------------------------------------------------------------------------------- the plan
def test_plan_for_qlora_on_gpus_stores_4bit_in_the_compute_dtype():
    p = plan("nf4-dq", "bfloat16", "cuda", layers=32)
    assert p.units[:2] == ["model.layers.0", "model.layers.1"] and len(p.units) == 33 and "root" in p.units[-1]
    assert p.quant_storage == "bfloat16"  # the packed 4-bit weights: FSDP shards them with the bf16 parameters
    assert p.param_dtype == "bfloat16" and p.reduce_dtype == "float32" and p.grad_scaler is None
    fp16 = plan("nf4", "fp16", "cuda", layers=2)
    assert fp16.quant_storage == "float16" and fp16.grad_scaler == "ShardedGradScaler"
    cpu = plan("nf4", "float32", "cpu", layers=2)  # what the CPU tests below train
    assert cpu.quant_storage == "float32" and cpu.param_dtype is None and cpu.grad_scaler is None
    assert plan("none", "bf16", "cuda", layers=2).quant_storage is None  # 16-bit LoRA: nothing packed
    with pytest.raises(FsdpUnsupported, match="int8"):
        plan("int8", "bf16", "cuda", layers=2)


def test_quantization_config_carries_the_storage_dtype():
    import torch

    from tunedoc.trainer.recipe import quantization_config

    assert quantization_config("nf4", torch.bfloat16, torch.bfloat16).bnb_4bit_quant_storage == torch.bfloat16
    assert quantization_config("nf4", torch.bfloat16).bnb_4bit_quant_storage == torch.uint8  # ddp: bnb's default


def test_the_units_are_the_decoder_layers_of_the_peft_model(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunedoc.trainer.fsdp import decoder_layers

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, target_modules="all-linear"))
    path, layers = decoder_layers(model)
    assert path.endswith("model.layers") and len(layers) == model.config.num_hidden_layers


def _config(model: str, strategy: str, quant: str = "nf4-dq") -> dict:
    from tunedoc.profiles.profile import load_profile

    prof = load_profile("qlora-balanced").with_overrides([f"strategy={strategy}", f"quant={quant}"])
    return {"model": model, "profile": prof.to_dict()}


def test_auto_strategy_in_the_launch_plan():
    cpu = resolve_strategy(plan_launch(nproc=2, gpu_names=[]), _config(str(LLAMA2_70B), "auto"))
    assert cpu["strategy"] == "ddp"  # CPU processes: auto is ddp
    asked = resolve_strategy(plan_launch(nproc=2, gpu_names=[]), _config(str(LLAMA2_70B), "fsdp"))
    assert asked["strategy"] == "fsdp" and "as asked" in asked["notes"][-1]
    gpus = plan_launch(gpu_names=["NVIDIA A100-SXM4-40GB"] * 2, windows=False)
    big = resolve_strategy(gpus, _config(str(LLAMA2_70B), "auto"), gpu_gib=40.0)
    assert big["strategy"] == "fsdp" and "shards" in big["notes"][-1]  # 70B QLoRA: 45.7 GiB whole, 27.7 sharded
    assert resolve_strategy(gpus, _config(str(LLAMA2_70B), "auto"), gpu_gib=80.0)["strategy"] == "ddp"
    one = plan_launch(gpu_names=[])
    assert "strategy" not in resolve_strategy(one, _config(str(LLAMA2_70B), "auto"))  # one process: no strategy


# ------------------------------------------------------------------------------------- the low-memory load's parts
def _tied_model(tiny_model_dir, tmp_path) -> Path:
    """The tiny model with tie_word_embeddings and no lm_head in its checkpoint (as Llama-3.2-1B, Qwen2.5-0.5B)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    src.config.tie_word_embeddings = True
    tied = type(src)(src.config)
    tied.load_state_dict(src.state_dict(), strict=False)
    tied.tie_weights()
    out = tmp_path / "tied"
    tied.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


@pytest.mark.parametrize("quant", ["nf4-dq", "none"])
@pytest.mark.parametrize("tied", [False, True])
def test_other_ranks_rebuild_rank_0s_model_on_meta_without_any_weights(tiny_model_dir, tmp_path, quant, tied):
    import torch
    from transformers import AutoModelForCausalLM

    from tunedoc.trainer.fsdp import build_on_meta, manifest
    from tunedoc.trainer.recipe import quantization_config

    path = _tied_model(tiny_model_dir, tmp_path) if tied else tiny_model_dir
    qconf = quantization_config(quant, torch.float32, torch.float32)
    rank0 = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, quantization_config=qconf,
                                                 device_map={"": "cpu"})
    meta = build_on_meta(str(path), torch.float32, quantization_config(quant, torch.float32, torch.float32),
                         manifest(rank0))

    def layout(m):
        return {n: (type(p).__name__, tuple(p.shape), p.dtype, getattr(p, "quant_type", None),
                    getattr(p, "blocksize", None), getattr(p, "compress_statistics", None))
                for n, p in m.named_parameters(remove_duplicate=False)}

    assert layout(meta) == layout(rank0)  # 4-bit weights packed (N, 1) in the storage dtype, as rank 0 quantized them
    assert {n: (b.shape, b.dtype) for n, b in meta.named_buffers()} == {n: (b.shape, b.dtype)
                                                                       for n, b in rank0.named_buffers()}
    assert all(p.device.type == "meta" for p in meta.parameters())  # no storage: this rank never holds the weights
    assert all(b.device.type == "meta" for b in meta.buffers())
    assert (meta.lm_head.weight is meta.model.embed_tokens.weight) == tied == (
        rank0.lm_head.weight is rank0.model.embed_tokens.weight)
    if quant != "none":  # what PEFT reads to wrap the 4-bit layers with its 4-bit LoRA layers
        assert meta.is_loaded_in_4bit and type(meta.model.layers[0].mlp.up_proj).__name__ == "Linear4bit"


# ----------------------------------------------------------------------------------------------- real CPU ranks
STEPS = 20
COMMON = ["--profile", "qlora-min", "--json", "--set", "quant=nf4", "--set", f"max_steps={STEPS}", "--set", "lr=3e-3",
          "--set", "cutoff_len=96", "--set", "micro_batch=1", "--set", "save_every=4", "--set", "eval_split=0",
          "--set", "lora_dropout=0", "--set", "sample_every=0"]


def train(model, data, runs, *extra, timeout=400):
    return distributed_train(model, data, runs, *extra, common=COMMON, timeout=timeout)


@pytest.fixture(scope="module")
def fsdp_and_single(tiny_model_dir, identity_jsonl, tmp_path_factory):
    fsdp = train(tiny_model_dir, identity_jsonl, tmp_path_factory.mktemp("fsdp-runs"), "--nproc", "2",
                 "--strategy", "fsdp", "--set", "grad_accum=2")
    single = train(tiny_model_dir, identity_jsonl, tmp_path_factory.mktemp("single-runs"), "--set", "grad_accum=4")
    return fsdp, single


@pytest.mark.slow
def test_two_fsdp_ranks_train_the_curve_of_one_rank(fsdp_and_single):
    fsdp, single = fsdp_and_single
    a, b = losses(fsdp), losses(single)
    assert len(a) == len(b) == STEPS
    for step in a:
        assert a[step] == pytest.approx(b[step], rel=1e-4, abs=1e-4), (step, a[step], b[step])
    assert a[STEPS] < a[1] - 0.2, "the loss must fall"
    events = [json.loads(x) for x in (fsdp / "events.jsonl").read_text().splitlines()]
    start = next(e for e in events if e["type"] == "start")
    assert start["strategy"] == "fsdp" and start["world_size"] == 2 and start["global_batch"] == 4
    assert "2 ranks (gloo), fsdp" in start["device"]
    assert json.loads((fsdp / "config.json").read_text())["launch"]["strategy"] == "fsdp"
    log = (fsdp / "trainer.log").read_text()
    assert "4-bit weights packed in float32" in log
    # the low-memory load ran: rank 0 read the model (CPU RAM), rank 1 built it on the meta device and received only
    # its half of the parameters (plus the 4-bit quantization constants, which are not parameters)
    load = start["fsdp_load"]
    assert load["path"] == "low-memory", load
    ranks = {r["rank"]: r for r in load["ranks"]}
    assert ranks[0]["built_on"] == "cpu" and ranks[1]["built_on"] == "meta"
    for r in ranks.values():
        assert 0.45 * r["full_bytes"] <= r["params_bytes"] <= 0.55 * r["full_bytes"], r
    assert "rank 1 built the model on the meta device" in log and "quantization constants received" in log


@pytest.mark.slow
def test_the_fsdp_adapter_is_a_plain_peft_adapter_that_loads(fsdp_and_single, tiny_model_dir, identity_jsonl):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    fsdp, single = fsdp_and_single
    for rel in ("adapter", f"checkpoints/step-{STEPS:06d}"):
        assert sorted(p.name for p in (fsdp / rel).iterdir()) == sorted(p.name for p in (single / rel).iterdir())
    a = load_file(str(fsdp / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(single / "adapter" / "adapter_model.safetensors"))
    assert sorted(a) == sorted(b) and all(a[k].shape == b[k].shape for k in a)  # whole tensors, not shards
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4), k
    # export copies it; the copy loads on the unquantized base and changes its output as the one-rank adapter does
    out = tunedoc("export", str(fsdp), "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    exported = fsdp / "adapter-export"
    x = torch.tensor([[1, 5, 9, 14, 3, 7]])
    outputs = []
    for path in (exported, single / "adapter"):
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(path))
        with torch.no_grad():
            outputs.append(model(input_ids=x).logits)
    with torch.no_grad():
        plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(input_ids=x).logits
    assert torch.allclose(outputs[0], outputs[1], atol=1e-3) and not torch.allclose(outputs[0], plain, atol=1e-3)


@pytest.mark.slow
def test_the_simple_load_path_still_trains_the_same_curve(fsdp_and_single, tiny_model_dir, identity_jsonl, tmp_path,
                                                          monkeypatch):
    monkeypatch.setenv("TUNEDOC_FSDP_LOAD", "full")  # every rank loads the whole model, then shards it
    simple = train(tiny_model_dir, identity_jsonl, tmp_path, "--nproc", "2", "--strategy", "fsdp",
                   "--set", "grad_accum=2")
    start = next(json.loads(x) for x in (simple / "events.jsonl").read_text().splitlines() if '"start"' in x)
    assert start["fsdp_load"]["path"] == "full" and "TUNEDOC_FSDP_LOAD" in start["fsdp_load"]["why"]
    assert "fsdp load: simple path" in (simple / "trainer.log").read_text()
    a, b = losses(simple), losses(fsdp_and_single[0])
    assert sorted(a) == sorted(b)
    for step in a:
        assert a[step] == pytest.approx(b[step], rel=1e-4, abs=1e-4), (step, a[step], b[step])


def _status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def _wait(pred, timeout=180, every=0.05, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_an_fsdp_run_stopped_and_resumed_continues_the_curve(fsdp_and_single, tiny_model_dir, identity_jsonl,
                                                             tmp_path):
    from tunedoc.trainer.launch import send_control

    reference, _ = fsdp_and_single
    started = tunedoc("train", "--model", tiny_model_dir, "--data", identity_jsonl, "--runs-dir", tmp_path, *COMMON,
                      "--nproc", "2", "--strategy", "fsdp", "--set", "grad_accum=2", "--set", "save_every=0",
                      "--detach")
    assert started.returncode == 0, started.stderr
    run_dir = Path(json.loads(started.stdout)["run_dir"])
    _wait(lambda: _status(run_dir).get("step", 0) >= 2, what="the first steps")
    send_control(run_dir, "pause")  # pause reaches both ranks between steps; stop then saves a checkpoint
    _wait(lambda: _status(run_dir).get("status") == "paused", what="pause")
    stopped_at = _status(run_dir)["step"]
    assert 2 <= stopped_at < STEPS, "the run finished before the pause: the box is too fast for this test's timing"
    send_control(run_dir, "stop")
    _wait(lambda: _status(run_dir).get("status") == "stopped", what="stop")
    assert (run_dir / "checkpoints" / f"step-{stopped_at:06d}" / "trainer_state.pt").is_file()

    resumed = tunedoc("train", "--resume", run_dir.name, "--runs-dir", tmp_path, "--json")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    starts = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines() if '"start"' in x]
    assert starts[-1]["resumed_from_step"] == stopped_at and starts[-1]["strategy"] == "fsdp"
    # the steps after the stop have the uninterrupted run's losses: the LoRA weights and the sharded optimizer
    # states came back from the checkpoint
    curve, ref = losses(run_dir), losses(reference)
    assert sorted(curve) == list(range(1, STEPS + 1))
    for step in ref:
        assert curve[step] == pytest.approx(ref[step], rel=1e-4, abs=1e-4), (step, curve[step], ref[step])


@pytest.mark.slow
def test_an_fsdp_demo_skips_its_closing_eval_and_says_how_to_score_it(tmp_path):
    """Rank 0 alone cannot run a sharded model, so a demo under fsdp trains, completes, and names the command that
    scores it afterwards (with the runs folder it lives in) instead of hanging or failing in its closing eval."""
    runs = tmp_path / "runs"
    r = subprocess.run([sys.executable, "-m", "tunedoc", "demo", "--headless", "--nproc", "2", "--strategy", "fsdp",
                        "--steps", "4", "--runs-dir", str(runs)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    [run] = [p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")]
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert events[-1]["type"] == "done" and events[-1]["status"] == "completed"
    assert not [e for e in events if e["type"] == "eval" and e.get("source") == "final"]
    [skip] = [e for e in events if e.get("id") == "final-eval-skipped-fsdp"]
    assert f"tunedoc eval {run.name} --base --runs-dir {runs}" in skip["message"]
    assert "no before/after scores" in r.stderr
