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

Loading (trainer/fsdp.py's low-memory load, as accelerate's fsdp_cpu_ram_efficient_loading): rank 0 reads and
quantizes the model in CPU RAM, the other ranks build it on the meta device, and after sharding rank 0's tensors are
broadcast into each GPU's shards. A GPU then never holds the whole model: at most its shards, the quantization
constants, and one unit (a decoder layer or the root) whole while fully_shard moves and splits it (the broadcast
brings one whole tensor at a time, less). Rank 0's machine needs the whole quantized model in CPU RAM instead. The
simple path (TUNEDOC_FSDP_LOAD=full, or a model the meta ranks cannot rebuild) loads the whole model onto every GPU.

The global batch grows with the GPUs (micro_batch x grad_accum x N): the per-GPU memory does not.
"""

from __future__ import annotations

from dataclasses import replace

from tunedoc.profiles.estimate import Estimate

NCCL_GB = 0.25  # NCCL communicator buffers per GPU (see above)
LABELS = {"ddp_buckets": "DDP gradient buckets", "nccl_buffers": "NCCL buffers",
          "fsdp_gather": "FSDP all-gather buffers (unsharded)"}
STRATEGIES = ("ddp", "fsdp")
# the model's state: what fsdp shards 1/N, and what every GPU holds whole under either strategy (ddp replicates both)
SHARDED = ("quantized_weights", "weights_16bit", "lora_params", "lora_grads", "optimizer_states")
WHOLE = ("quant_constants",)  # bitsandbytes' absmax: not parameters, FSDP leaves them on every rank
MODEL_STATE = (*SHARDED, *WHOLE)
PER_RANK = ("activations", "logits_loss", "layer_backward")  # each rank's own micro-batch, under either strategy


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
             *(["4-bit weights stored in the compute dtype (bnb_4bit_quant_storage) so FSDP can shard them"]
               if units.get("packed_4bit") else []),
             f"the global batch is {d.get('micro_batch', '?')} x grad_accum x {gpus}",
             f"loading (low-memory): rank 0 reads the model into CPU RAM ({load_cpu_gb(est):.2f} GiB) and each GPU "
             f"receives only its shards: at most {load_gb(est, gpus):.2f} GiB on a GPU while loading (the whole "
             f"model, {load_gb(est):.2f} GiB, only on the simple path, TUNEDOC_FSDP_LOAD=full)",
             "with GPUs of different sizes the smallest card decides"]
    return replace(est, total_gb=total, breakdown=b, assumptions=[*est.assumptions, *notes],
                   details={**d, "gpus": gpus, "strategy": "fsdp", "per_gpu": True, "load_gb": load_gb(est, gpus),
                            "load_cpu_gb": load_cpu_gb(est), "load_gb_simple": load_gb(est)})


WEIGHTS = ("quantized_weights", "quant_constants", "weights_16bit")


def load_gb(est: Estimate, gpus: int = 1) -> float:
    """The most one GPU holds while an fsdp run on `gpus` GPUs loads (trainer/fsdp.py). Low-memory load (the
    default, gpus > 1): its shards of the weights, the quantization constants (whole on every rank), one unit whole
    while fully_shard splits it (the root or a decoder layer, whichever is larger) and the CUDA context. gpus=1 (or
    the simple path, TUNEDOC_FSDP_LOAD=full): the whole quantized model."""
    b = est.breakdown
    whole = sum(b.get(k, 0.0) for k in WEIGHTS) + b.get("cuda_context", 0.0)
    units = est.details.get("fsdp")
    if gpus <= 1 or not units:
        return whole
    shards = (b.get("quantized_weights", 0.0) + b.get("weights_16bit", 0.0)) / gpus
    return shards + b.get("quant_constants", 0.0) + max(units["root_gb"], units["layer_gb"]) + b.get("cuda_context", 0.0)


def load_cpu_gb(est: Estimate) -> float:
    """The CPU RAM rank 0 needs for an fsdp run's low-memory load: the whole quantized model and its LoRA weights
    (rank 0 keeps the whole tensors until they are broadcast into the shards)."""
    b = est.breakdown
    return sum(b.get(k, 0.0) for k in (*WEIGHTS, "lora_params"))


def _ram_note(est: Estimate, ram_gib: float | None) -> str:
    """'' or why rank 0's machine cannot load the model for the low-memory load."""
    if not ram_gib or load_cpu_gb(est) <= ram_gib:
        return ""
    return (f"; rank 0 needs {load_cpu_gb(est):.1f} GiB of CPU RAM to load the model (low-memory load) and this "
            f"machine has {ram_gib:.1f} GiB: it will run out of RAM while loading")


def choose_strategy(requested: str, est: Estimate | None, gpus: int, gpu_gib: float | None,
                    device: str = "cuda", quant: str = "", ram_gib: float | None = None) -> tuple[str, str]:
    """(ddp | fsdp, why) for a run on `gpus` GPUs of `gpu_gib` each (the smallest card), from the profile's
    strategy: ddp/fsdp as asked; auto: ddp when the model fits one GPU whole, fsdp when only its shards fit.
    `ram_gib`: rank 0's CPU RAM, checked against the low-memory load's need when fsdp is chosen."""
    if requested in STRATEGIES:
        note = _ram_note(est, ram_gib) if requested == "fsdp" and est is not None and device == "cuda" else ""
        return requested, f"strategy {requested}: as asked{note}"
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
    ram = _ram_note(est, ram_gib)
    if fsdp <= gpu_gib:  # the low-memory load puts only the shards on each GPU: the training peak decides
        return "fsdp", (f"strategy auto: fsdp, the whole model needs {ddp:.1f} GiB per GPU but the {gpu_gib:.1f} GiB "
                        f"cards hold its shards ({fsdp:.1f} GiB; {load_gb(est, gpus):.1f} GiB while loading, rank 0 "
                        f"reading it into {load_cpu_gb(est):.1f} GiB of CPU RAM){ram}")
    return "fsdp", (f"strategy auto: fsdp, the closest to fitting: {fsdp:.1f} GiB per GPU sharded ({ddp:.1f} whole) "
                    f"on {gpu_gib:.1f} GiB cards; it may run out of memory (tunedoc fit suggests smaller settings)"
                    f"{ram}")
