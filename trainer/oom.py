"""Out-of-memory step-down: when the first steps do not fit, trade speed for memory, one move at a time.

The moves, in order (each a `warning` event with id "oom-fallback" and the move's `kind`):
  1. halve micro_batch and double grad_accum (same effective batch, same data per optimizer step)
  2. loss_impl plain -> chunked: the full logits are never held (same result, no slower)
  3. grad_ckpt off -> on: recompute activations in backward (~30 % slower)
  4. grad_ckpt on -> offload: checkpointed layer inputs wait in pinned CPU RAM (~15 % slower)
  5. halve cutoff_len (not below MIN_CUTOFF): samples are truncated, so this one changes what the model sees
Everything before 5 trains the same model on the same data; only 5 changes what is learned.
When none is left, the run ends with an `error` event, id "cuda-oom" (the doctor's finding), and HINT.

Testing on a machine without a GPU: set TUNEDOC_TEST_OOM_BUDGET=N (tests only). The recipe then raises
torch.OutOfMemoryError from a forward pre-hook whenever a micro-batch's "memory" exceeds N, where memory is
micro_batch x sequence length tokens, halved when gradient checkpointing is on and halved again with offload,
doubled with loss_impl=plain. This exercises the real recovery
path (exception in forward, gradients dropped, loader rebuilt) without real memory pressure.

No torch import at module level.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

MIN_CUTOFF = 128
TEST_BUDGET_ENV = "TUNEDOC_TEST_OOM_BUDGET"
ERROR_ID = "cuda-oom"
HINT = (
    "Out of GPU memory even at micro_batch 1 with offloaded checkpoints, the chunked loss and a cutoff of {cutoff} tokens. Try a "
    "smaller model or a lower-memory profile (`tunedoc fit --model MODEL` ranks the ones that fit), quant=nf4-dq, "
    "optimizer=paged-adamw-8bit, a smaller lora_r, close other programs on the GPU (nvidia-smi lists them), and "
    "set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True against fragmentation."
)


@dataclass(frozen=True)
class MemorySettings:
    """The profile fields the step-down changes."""

    micro_batch: int
    grad_accum: int
    grad_ckpt: str  # off | on | offload (true/false from older runs' config.json are read as on/off)
    cutoff_len: int
    loss_impl: str = "auto"  # auto | chunked | fused | plain

    def __post_init__(self):
        if isinstance(self.grad_ckpt, bool) or self.grad_ckpt in (0, 1):
            object.__setattr__(self, "grad_ckpt", "on" if self.grad_ckpt else "off")


@dataclass(frozen=True)
class Fallback:
    settings: MemorySettings
    message: str
    kind: str  # "micro_batch" | "loss_impl" | "grad_ckpt" | "cutoff_len"


def next_fallback(s: MemorySettings) -> Fallback | None:
    """The next, smaller setting, or None when nothing is left to give up."""
    if s.micro_batch > 1:
        mb = s.micro_batch // 2
        ga = s.grad_accum * s.micro_batch // mb  # keeps micro_batch x grad_accum (odd micro batches round up)
        return Fallback(
            replace(s, micro_batch=mb, grad_accum=ga),
            f"out of memory: micro_batch {s.micro_batch} -> {mb}, grad_accum {s.grad_accum} -> {ga} "
            f"(same effective batch {mb * ga}), retrying",
            "micro_batch",
        )
    if s.loss_impl == "plain":
        return Fallback(
            replace(s, loss_impl="chunked"),
            "out of memory at micro_batch 1: computing the loss in chunks instead of over the full logits "
            "(loss_impl=chunked: same loss, no slower), retrying",
            "loss_impl",
        )
    if s.grad_ckpt == "off":
        return Fallback(
            replace(s, grad_ckpt="on"),
            "out of memory at micro_batch 1: turning on gradient checkpointing (about 30% slower), retrying",
            "grad_ckpt",
        )
    if s.grad_ckpt == "on":
        return Fallback(
            replace(s, grad_ckpt="offload"),
            "out of memory at micro_batch 1 with gradient checkpointing: offloading the checkpointed activations "
            "to CPU RAM (grad_ckpt=offload, about 15% slower), retrying",
            "grad_ckpt",
        )
    if s.cutoff_len > MIN_CUTOFF:
        cut = max(MIN_CUTOFF, s.cutoff_len // 2)
        return Fallback(
            replace(s, cutoff_len=cut),
            f"out of memory at micro_batch 1 with offloaded checkpoints and the chunked loss: cutoff_len {s.cutoff_len} -> {cut} "
            "(longer samples are truncated), retrying",
            "cutoff_len",
        )
    return None


def is_oom(exc: BaseException) -> bool:
    """A CUDA (or test-injected) out-of-memory error."""
    import torch

    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def test_budget() -> int | None:
    value = os.environ.get(TEST_BUDGET_ENV)
    return int(value) if value else None


def install_test_hook(model, get_settings) -> None:
    """Tests only (TUNEDOC_TEST_OOM_BUDGET): make the forward raise torch.OutOfMemoryError above the budget.
    `model` is the decoder (called by every loss_impl); `get_settings()` returns the MemorySettings in force."""
    budget = test_budget()
    if budget is None:
        return
    import torch

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            return
        if not torch.is_grad_enabled():  # generation and eval are not limited
            return
        s = get_settings()
        need = ids.shape[0] * ids.shape[1] * {"off": 1.0, "on": 0.5, "offload": 0.25}[s.grad_ckpt] \
            * (2.0 if s.loss_impl == "plain" else 1.0)
        if need > budget:
            raise torch.OutOfMemoryError(
                f"CUDA out of memory (injected by {TEST_BUDGET_ENV}={budget}: batch needs {need:.0f})"
            )

    model.register_forward_pre_hook(hook, with_kwargs=True)
