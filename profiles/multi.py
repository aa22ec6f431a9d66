"""The per-GPU figure of a multi-GPU run (`tunedoc estimate --gpus N --strategy ddp|fsdp`), and auto's choice.

ddp: every GPU holds the whole quantized model, its LoRA adapter, optimizer states and the activations of its own
micro-batch: the single-GPU estimate, plus what data parallelism adds on each card:

- DDP's gradient buckets: DDP all-reduces gradients in flat buckets that are a second copy of every trainable
  gradient (torch's default `gradient_as_bucket_view=False`), in the gradients' dtype (fp32 for PEFT adapters);
- NCCL's communicator: its buffers and streams (NCCL_BUFFSIZE 4 MiB per channel and peer, a few channels; about
  0.2-0.3 GiB per GPU in practice; gloo on the CPU allocates nothing on the GPU).

fsdp (FSDP2 fully_shard per decoder layer and the root, trainer/fsdp.py): every parameter is split 1/N over the
GPUs, so are the LoRA gradients and optimizer states (reduce-scattered); what stays whole on every GPU:

- bitsandbytes' quantization constants (absmax): they are not parameters, FSDP leaves them on every rank;
- the activations of the rank's own micro-batch, the loss and one layer's backward: as on one GPU;
- the all-gather buffers: the root (embeddings, lm_head) stays gathered from forward to backward, and a decoder
  layer is gathered while the one before it computes (FSDP2 prefetches one ahead): root + 2 layers, unsharded, in
  the dtype they are gathered in (the compute dtype; packed 4-bit weights as stored);
- NCCL's buffers, as for ddp.

The global batch grows with the GPUs (micro_batch x grad_accum x N): the per-GPU memory does not.
"""

from __future__ import annotations

from dataclasses import replace

from tunedoc.profiles.estimate import Estimate

NCCL_GB = 0.25  # NCCL communicator buffers per GPU (see above)
LABELS = {"ddp_buckets": "DDP gradient buckets", "nccl_buffers": "NCCL buffers",
          "fsdp_gather": "FSDP all-gather buffers (unsharded)"}
STRATEGIES = ("ddp", "fsdp")
SHARDED = ("quantized_weights", "weights_16bit", "lora_params", "lora_grads", "optimizer_states")
REPLICATED = ("quant_constants", "activations", "logits_loss", "layer_backward")


def per_gpu(est: Estimate, gpus: int, strategy: str = "ddp") -> Estimate:
    """The estimate for each of `gpus` GPUs training with `strategy` (ddp | fsdp); `est` itself for one GPU."""
    if gpus <= 1:
        return est
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    if strategy == "fsdp":
        return _fsdp(est, gpus)
    b = dict(est.breakdown)
    b["ddp_buckets"] = b.get("lora_grads", 0.0)
    b["nccl_buffers"] = NCCL_GB
    total = est.total_gb + b["ddp_buckets"] + NCCL_GB
    d = est.details
    notes = [f"ddp on {gpus} GPUs: each GPU holds the whole quantized model and adapter (replicated), plus DDP's "
             f"gradient buckets ({b['ddp_buckets']:.2f} GiB, a copy of the LoRA gradients) and NCCL buffers "
             f"(~{NCCL_GB} GiB); the global batch is {d.get('micro_batch', '?')} x grad_accum x {gpus}",
             "with GPUs of different sizes the smallest card decides"]
    return replace(est, total_gb=total, breakdown=b, assumptions=[*est.assumptions, *notes],
                   details={**d, "gpus": gpus, "strategy": strategy, "per_gpu": True})


def _fsdp(est: Estimate, gpus: int) -> Estimate:
    d = est.details
    units = d.get("fsdp")
    if not units:
        raise ValueError("this estimate has no layer sizes for fsdp (made by an older estimator)")
    b = dict(est.breakdown)
    allocated_before = sum(v for k, v in b.items() if k not in ("allocator_overhead", "cuda_context", "correction"))
    frac = b.get("allocator_overhead", 0.0) / allocated_before if allocated_before else 0.0
    for k in SHARDED:
        if k in b:
            b[k] = b[k] / gpus
    b["fsdp_gather"] = units["root_gb"] + 2 * units["layer_gb"]
    b["nccl_buffers"] = NCCL_GB
    allocated = sum(v for k, v in b.items() if k not in ("allocator_overhead", "cuda_context", "correction",
                                                        "nccl_buffers"))
    b["allocator_overhead"] = allocated * frac
    total = sum(b.values())
    sharded = sum(est.breakdown.get(k, 0.0) for k in SHARDED)
    notes = [f"fsdp on {gpus} GPUs: sharded 1/{gpus} on each GPU: quantized and unquantized weights, LoRA parameters, "
             f"gradients and optimizer states ({sharded:.2f} GiB on one GPU -> {sharded / gpus:.2f} GiB)",
             "replicated on every GPU: the quantization constants (not parameters: FSDP leaves them whole), the "
             "activations of each GPU's own micro-batch, the loss and one layer's backward",
             f"communication: the root (embeddings, lm_head) gathered from forward to backward "
             f"({units['root_gb']:.2f} GiB) and two decoder layers gathered at a time ({units['layer_gb']:.2f} GiB "
             f"each, one computing, the next prefetched), plus NCCL buffers (~{NCCL_GB} GiB)",
             f"4-bit weights stored in the compute dtype (bnb_4bit_quant_storage) so FSDP can shard them; the global "
             f"batch is {d.get('micro_batch', '?')} x grad_accum x {gpus}",
             f"loading: each GPU holds the whole quantized model ({load_gb(est):.2f} GiB with the CUDA context) "
             "before it is sharded",
             "with GPUs of different sizes the smallest card decides"]
    return replace(est, total_gb=total, breakdown=b, assumptions=[*est.assumptions, *notes],
                   details={**d, "gpus": gpus, "strategy": "fsdp", "per_gpu": True, "load_gb": load_gb(est)})


def load_gb(est: Estimate) -> float:
    """What one GPU holds while an fsdp run loads (trainer/fsdp.py): the whole quantized model, before sharding."""
    b = est.breakdown
    return sum(b.get(k, 0.0) for k in ("quantized_weights", "quant_constants", "weights_16bit", "cuda_context"))


def choose_strategy(requested: str, est: Estimate | None, gpus: int, gpu_gib: float | None,
                    device: str = "cuda", quant: str = "") -> tuple[str, str]:
    """(ddp | fsdp, why) for a run on `gpus` GPUs of `gpu_gib` each (the smallest card), from the profile's
    strategy: ddp/fsdp as asked; auto: ddp when the model fits one GPU whole, fsdp when only its shards fit."""
    if requested in STRATEGIES:
        return requested, f"strategy {requested}: as asked"
    if device != "cuda" or gpus <= 1:
        return "ddp", "strategy auto: ddp (CPU processes or one GPU)"
    if est is None or not gpu_gib:
        return "ddp", "strategy auto: ddp (the model's memory or the GPUs' size is unknown)"
    ddp = per_gpu(est, gpus, "ddp").total_gb
    if ddp <= gpu_gib:
        return "ddp", f"strategy auto: ddp, the whole model fits each GPU ({ddp:.1f} of {gpu_gib:.1f} GiB)"
    if quant == "int8":
        return "ddp", (f"strategy auto: ddp although it needs {ddp:.1f} of {gpu_gib:.1f} GiB per GPU: int8 cannot be "
                       "sharded (use quant=nf4 to shard it with fsdp)")
    fsdp = per_gpu(est, gpus, "fsdp").total_gb
    if fsdp <= gpu_gib and load_gb(est) > gpu_gib:
        return "fsdp", (f"strategy auto: fsdp, the closest to fitting: its shards fit ({fsdp:.1f} of {gpu_gib:.1f} GiB) "
                        f"but each GPU loads the whole 4-bit model first ({load_gb(est):.1f} GiB): it will run out "
                        "of memory while loading")
    if fsdp <= gpu_gib:
        return "fsdp", (f"strategy auto: fsdp, the whole model needs {ddp:.1f} GiB per GPU but the {gpu_gib:.1f} GiB "
                        f"cards hold its shards ({fsdp:.1f} GiB)")
    return "fsdp", (f"strategy auto: fsdp, the closest to fitting: {fsdp:.1f} GiB per GPU sharded ({ddp:.1f} whole) "
                    f"on {gpu_gib:.1f} GiB cards; it may run out of memory (tunedoc fit suggests smaller settings)")
