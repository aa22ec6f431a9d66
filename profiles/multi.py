"""The per-GPU figure of a data-parallel run (`tunedoc estimate --gpus N`).

With DDP every GPU holds the whole quantized model, its LoRA adapter, optimizer states and the activations of its
own micro-batch: the single-GPU estimate, plus what data parallelism adds on each card:

- DDP's gradient buckets: DDP all-reduces gradients in flat buckets that are a second copy of every trainable
  gradient (torch's default `gradient_as_bucket_view=False`), in the gradients' dtype (fp32 for PEFT adapters);
- NCCL's communicator: its buffers and streams (NCCL_BUFFSIZE 4 MiB per channel and peer, a few channels; about
  0.2-0.3 GiB per GPU in practice; gloo on the CPU allocates nothing on the GPU).

The global batch grows with the GPUs (micro_batch x grad_accum x N): the per-GPU memory does not. Sharding a model
across the cards (FSDP) is not modelled: tunedoc does not train with it yet.
"""

from __future__ import annotations

from dataclasses import replace

from tunedoc.profiles.estimate import Estimate

NCCL_GB = 0.25  # NCCL communicator buffers per GPU (see above)
LABELS = {"ddp_buckets": "DDP gradient buckets", "nccl_buffers": "NCCL buffers"}


def per_gpu(est: Estimate, gpus: int, strategy: str = "ddp") -> Estimate:
    """The estimate for each of `gpus` GPUs training data-parallel; `est` itself for one GPU."""
    if gpus <= 1:
        return est
    if strategy != "ddp":
        raise ValueError(f"strategy {strategy!r}: tunedoc trains data-parallel (ddp) only; fsdp is not there yet")
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
