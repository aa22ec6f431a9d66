"""Activation offloading (trainer/offload.py): the saved-tensor hooks move what backward needs out and back without
changing a gradient; on the CPU a run with grad_ckpt=offload says there is nowhere to offload to and trains as
grad_ckpt=on; the chunked loss trains the same curve as the plain one."""

import json
import subprocess
import sys

import pytest
import torch

from tunedoc.trainer.offload import OffloadActivations, context


def _grads(model, ids, hooks=None):
    model.zero_grad()
    if hooks is None:
        out = model(input_ids=ids, labels=ids).loss
    else:
        with hooks:
            out = model(input_ids=ids, labels=ids).loss
    out.backward()
    return out.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_hooks_round_trip_the_checkpointed_layer_inputs_of_a_real_model(tiny_model_dir):
    """The CPU stands in for the GPU (device="cpu" copies CPU tensors): every layer input that checkpointing
    keeps goes through pack and comes back through unpack, and the gradients are bit-identical."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model.gradient_checkpointing_enable({"use_reentrant": False})
    model.train()
    ids = torch.randint(0, 1000, (2, 256), generator=torch.Generator().manual_seed(0))
    loss_a, grads_a = _grads(model, ids)
    hooks = OffloadActivations("cpu", min_bytes=1)
    loss_b, grads_b = _grads(model, ids, hooks)
    assert loss_a == loss_b
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        assert torch.equal(grads_a[name], grads_b[name]), name
    layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
    # at least each decoder layer's input (2 x 256 tokens x hidden, fp32) left and came back
    assert hooks.stats["bytes"] >= layers * 2 * 256 * hidden * 4
    assert hooks.stats["packed"] >= layers and hooks.stats["unpacked"] >= layers


def test_small_tensors_parameters_and_other_devices_stay_put():
    hooks = OffloadActivations("cpu", min_bytes=1 << 20)
    w = torch.nn.Parameter(torch.randn(1024, 1024))  # 4 MiB, but a parameter
    small = torch.randn(16, requires_grad=True)
    big = torch.randn(512, 1024, requires_grad=True)  # 2 MiB
    with hooks:
        y = (big @ w).sum() + (small * small).sum()
    assert hooks.stats["packed"] == 1 and hooks.stats["bytes"] == big.numel() * 4  # big, saved by the matmul
    y.backward()
    torch.testing.assert_close(small.grad, 2 * small.detach())
    assert OffloadActivations("cuda", min_bytes=1)._pack(big)[0] == "keep"  # not a CUDA tensor: untouched


def test_offload_on_the_cpu_is_a_noop_with_a_note():
    ctx, note = context("offload", "cpu")
    assert not isinstance(ctx, OffloadActivations) and "nowhere to offload" in note
    assert context("on", "cuda:0")[1] is None and not isinstance(context("on", "cuda:0")[0], OffloadActivations)


def _run(model, data, runs, *sets):
    args = [sys.executable, "-m", "tunedoc", "train", "--model", str(model), "--data", str(data), "--profile",
            "qlora-min", "--runs-dir", str(runs), "--json", "--set", "max_steps=4", "--set", "cutoff_len=128",
            "--set", "lr=1e-3", "--set", "grad_accum=2"]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _curve(events):
    return [e["loss"] for e in events if e["type"] == "step"]


@pytest.mark.slow
def test_runs_with_offload_and_with_the_plain_loss_trace_the_same_curve(tiny_model_dir, identity_jsonl, tmp_path):
    on = _run(tiny_model_dir, identity_jsonl, tmp_path / "on", "grad_ckpt=on", "loss_impl=chunked")
    off = _run(tiny_model_dir, identity_jsonl, tmp_path / "offload", "grad_ckpt=offload", "loss_impl=chunked")
    plain = _run(tiny_model_dir, identity_jsonl, tmp_path / "plain", "grad_ckpt=on", "loss_impl=plain")
    assert len(_curve(on)) == 4
    assert _curve(off) == pytest.approx(_curve(on), rel=1e-6)
    assert _curve(plain) == pytest.approx(_curve(on), rel=1e-4)
    assert _curve(on)[-1] < _curve(on)[0]
    notes = [e for e in off if e["type"] == "warning" and e.get("id") == "offload-cpu"]
    assert len(notes) == 1 and "nowhere to offload" in notes[0]["message"]
    starts = {name: next(e for e in ev if e["type"] == "start") for name, ev in
              (("on", on), ("offload", off), ("plain", plain))}
    assert starts["on"]["loss_impl"] == "chunked" and starts["plain"]["loss_impl"] == "plain"
    assert starts["offload"]["grad_ckpt"] == "offload"
