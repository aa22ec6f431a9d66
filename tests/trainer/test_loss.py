"""The chunked loss (trainer/loss.py): the same value and gradients as the plain full-logits loss, without ever
holding the full logits; loss_impl=fused without Liger says what to install."""

import pytest
import torch

from tunedoc.trainer import loss as L


def _plain(hidden, weight, target, bias=None, softcap=None):
    logits = hidden @ weight.t() + (0 if bias is None else bias)
    logits = logits.float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return torch.nn.functional.cross_entropy(logits, target, ignore_index=-100, reduction="sum")


@pytest.mark.parametrize("softcap,with_bias", [(None, False), (30.0, True)])
def test_chunked_equals_plain_in_value_and_gradients(softcap, with_bias):
    g = torch.Generator().manual_seed(0)
    n, h, v = 300, 64, 32_000
    hidden = torch.randn(n, h, generator=g, dtype=torch.float32)
    weight = torch.randn(v, h, generator=g, dtype=torch.float32) * 0.1
    bias = torch.randn(v, generator=g, dtype=torch.float32) * 0.1 if with_bias else None
    target = torch.randint(0, v, (n,), generator=g)
    target[:70] = -100  # the prompt: no loss
    target[150:160] = -100
    leaves = [t.clone().requires_grad_(True) for t in (hidden, weight)] + \
        ([bias.clone().requires_grad_(True)] if with_bias else [])
    ref = [t.detach().clone().requires_grad_(True) for t in leaves]
    out = L.chunked_linear_cross_entropy(leaves[0], leaves[1], target, leaves[2] if with_bias else None,
                                         chunk=64, softcap=softcap)
    want = _plain(ref[0], ref[1], target, ref[2] if with_bias else None, softcap)
    assert out.item() == pytest.approx(want.item(), rel=1e-5)
    (out * 0.5).backward()  # an outer scale (the recipe's 1/tokens) reaches every gradient
    (want * 0.5).backward()
    for a, b in zip(leaves, ref):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)


def test_chunks_never_hold_the_full_logits():
    """The largest tensor made while the loss runs is one chunk's logits, not tokens x vocabulary."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Largest(TorchDispatchMode):
        biggest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor):
                    Largest.biggest = max(Largest.biggest, t.numel())
            return out

    n, h, v = 1024, 64, 32_000
    hidden = torch.randn(n, h, requires_grad=True)
    weight = torch.randn(v, h) * 0.02
    target = torch.randint(0, v, (n,))
    with Largest():
        L.chunked_linear_cross_entropy(hidden, weight, target, chunk=128).backward()
    assert Largest.biggest <= 128 * v < n * v


def test_the_chunk_follows_the_vocabulary():
    assert L.chunk_tokens(151_936) < L.chunk_tokens(32_000) <= 8192
    assert L.chunk_tokens(10_000_000) == 64


@pytest.mark.parametrize("targets", ["all-linear", ["q_proj", "v_proj", "lm_head"]])
def test_peft_4bit_tiny_model_same_loss_and_lora_gradients(tmp_path, targets):
    """On the model the recipe trains (4-bit base + LoRA, CPU): chunked == plain, and the LoRA gradients agree,
    also with an adapter on the lm_head (the demo trains one): there the loss must go through the head's forward."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from tunedoc.trainer.recipe import quantization_config
    from tunedoc.trainer.tiny import build_tiny_model

    path = build_tiny_model(tmp_path / "m", vocab_size=32_000)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                 quantization_config=quantization_config("nf4", torch.float32),
                                                 device_map={"": "cpu"})
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=targets, lora_dropout=0.0,
                                             init_lora_weights=False))
    for m in model.modules():
        if hasattr(m, "support_avx512bf16_for_cpu"):
            m.support_avx512bf16_for_cpu = False
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 32_000, (2, 96), generator=g)
    labels = ids.clone()
    labels[:, :40] = -100
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    results = {}
    for impl in ("plain", "chunked"):
        model.zero_grad()
        loss_sum, count = L.causal_lm_loss(model, batch, impl)
        (loss_sum / count).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        results[impl] = (loss_sum.item(), count, grads)
    assert results["chunked"][1] == results["plain"][1] == 2 * 56  # positions 40..95 of each row are scored
    assert results["chunked"][0] == pytest.approx(results["plain"][0], rel=1e-5)
    assert len(results["plain"][2]) > 0
    if "lm_head" in targets:
        assert any("lm_head" in n and g.abs().sum() > 0 for n, g in results["chunked"][2].items())
    for name, gp in results["plain"][2].items():
        torch.testing.assert_close(results["chunked"][2][name], gp, rtol=1e-3, atol=1e-6)


def test_the_chunked_forward_never_calls_the_lm_head(tmp_path):
    from transformers import AutoModelForCausalLM

    from tunedoc.trainer.tiny import build_tiny_model

    model = AutoModelForCausalLM.from_pretrained(build_tiny_model(tmp_path / "m"), dtype=torch.float32)
    calls = []
    model.get_output_embeddings().register_forward_hook(lambda *a: calls.append(1))
    ids = torch.randint(0, 1000, (1, 32))
    L.causal_lm_loss(model, {"input_ids": ids, "labels": ids}, "chunked")
    assert calls == []
    L.causal_lm_loss(model, {"input_ids": ids, "labels": ids}, "plain")
    assert calls == [1]


def test_fused_without_liger_says_what_to_install(monkeypatch):
    monkeypatch.setattr(L, "liger_available", lambda: False)
    with pytest.raises(L.LossUnavailable, match=r"pip install .*tunedoc\[fast\].*liger-kernel"):
        L.resolve("fused", "cuda:0")
    assert L.resolve("auto", "cuda:0") == ("chunked", None)
    assert L.resolve("auto", "cpu") == ("chunked", None)
    assert L.resolve("plain", "cpu") == ("plain", None)


def test_auto_picks_liger_on_cuda_and_falls_back_for_scaled_heads(monkeypatch):
    monkeypatch.setattr(L, "liger_available", lambda: True)
    monkeypatch.setattr(L, "triton_capable", lambda device: True)
    assert L.resolve("auto", "cuda:0")[0] == "fused"
    with pytest.raises(L.LossUnavailable, match="CUDA"):
        L.resolve("fused", "cpu")

    class Cohere:
        logit_scale = 0.0625

    impl, note = L.resolve("auto", "cuda:0", Cohere())
    assert impl == "plain" and "logit_scale" in note
    # a GPU older than Volta: Triton cannot run there, auto stays with the torch version
    monkeypatch.setattr(L, "triton_capable", lambda device: False)
    assert L.resolve("auto", "cuda:0")[0] == "chunked"
    with pytest.raises(L.LossUnavailable, match="compute capability 7.0"):
        L.resolve("fused", "cuda:0")


def test_train_with_fused_and_no_liger_says_what_to_install_before_a_run_exists(tiny_model_dir, identity_jsonl,
                                                                                 tmp_path):
    import subprocess
    import sys

    if L.liger_available():
        pytest.skip("Liger-Kernel is installed here")
    out = subprocess.run([sys.executable, "-m", "tunedoc", "train", "--model", str(tiny_model_dir), "--data",
                          str(identity_jsonl), "--profile", "qlora-min", "--runs-dir", str(tmp_path / "runs"),
                          "--set", "loss_impl=fused"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "loss_impl=fused needs Liger-Kernel" in out.stderr and "pip install 'tunedoc[fast]'" in out.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_trainer_refuses_fused_without_liger_at_setup(tiny_model_dir, identity_jsonl, tmp_path, monkeypatch):
    """Another interpreter (--python) is checked by the trainer itself: a failed run with the pip command."""
    from tunedoc.profiles.profile import load_profile
    from tunedoc.trainer.recipe import Recipe, RunFailed
    from tunedoc.trainer.rundir import CONFIG, write_json

    monkeypatch.setattr(L, "liger_available", lambda: False)
    prof = load_profile("qlora-min").with_overrides(["loss_impl=fused"])
    write_json(tmp_path / CONFIG, {"model": str(tiny_model_dir), "data": str(identity_jsonl), "profile": prof.to_dict()})
    r = Recipe(tmp_path, echo=False)
    with pytest.raises(RunFailed) as e:
        r.setup()
    assert e.value.id == "loss-impl" and "tunedoc[fast]" in e.value.hint
    assert not hasattr(r, "model")  # refused before the model loads


def test_the_chunked_loss_peak_is_a_fraction_of_the_plain_one():
    """Tracked tensor bytes (bench/memory_diet.py's tracker) of forward + backward at 2048 tokens x 32k vocab."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("memory_diet", Path(__file__).parents[2] / "bench" / "memory_diet.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    LiveBytes = bench.LiveBytes
    n, h, v = 2048, 64, 32_000
    weight = torch.randn(v, h) * 0.02
    target = torch.randint(0, v, (n,))
    peaks = {}
    for name in ("plain", "chunked"):
        hidden = torch.randn(n, h, requires_grad=True)
        with LiveBytes() as mem:
            loss = (_plain(hidden, weight, target) if name == "plain"
                    else L.chunked_linear_cross_entropy(hidden, weight, target, chunk=256))
            loss.backward()
        peaks[name] = mem.peak
    logits = n * v * 4
    assert peaks["plain"] >= 2 * logits  # the logits and their log-softmax at least
    assert peaks["chunked"] < logits / 4
