"""Out-of-memory step-down: when the first steps do not fit, trade speed for memory, one move at a time.

The moves, in order (each a `warning` event with id "oom-fallback"):
  1. halve micro_batch and double grad_accum (same effective batch, same data per optimizer step)
  2. turn on gradient checkpointing
  3. halve cutoff_len (not below MIN_CUTOFF): samples are truncated, so this one changes what the model sees
When none is left, the run ends with an `error` event, id "cuda-oom" (the doctor's finding), and HINT.

Testing on a machine without a GPU: set TUNEDOC_TEST_OOM_BUDGET=N (tests only). The recipe then raises
torch.OutOfMemoryError from a forward pre-hook whenever a micro-batch's "memory" exceeds N, where memory is
micro_batch x sequence length tokens, halved when gradient checkpointing is on. This exercises the real recovery
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
    "Out of GPU memory even at micro_batch 1 with gradient checkpointing and a cutoff of {cutoff} tokens. Try a "
    "smaller model or a lower-memory profile (`tunedoc fit --model MODEL` ranks the ones that fit), quant=nf4-dq, "
    "optimizer=paged-adamw-8bit, a smaller lora_r, close other programs on the GPU (nvidia-smi lists them), and "
    "set PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True against fragmentation."
)


@dataclass(frozen=True)
class MemorySettings:
    """The profile fields the step-down changes."""

    micro_batch: int
    grad_accum: int
    grad_ckpt: bool
    cutoff_len: int


@dataclass(frozen=True)
class Fallback:
    settings: MemorySettings
    message: str
    kind: str  # "micro_batch" | "grad_ckpt" | "cutoff_len"


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
    if not s.grad_ckpt:
        return Fallback(
            replace(s, grad_ckpt=True),
            "out of memory at micro_batch 1: turning on gradient checkpointing (about 30% slower), retrying",
            "grad_ckpt",
        )
    if s.cutoff_len > MIN_CUTOFF:
        cut = max(MIN_CUTOFF, s.cutoff_len // 2)
        return Fallback(
            replace(s, cutoff_len=cut),
            f"out of memory at micro_batch 1 with gradient checkpointing: cutoff_len {s.cutoff_len} -> {cut} "
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


def install_test_hook(model, get_grad_ckpt) -> None:
    """Tests only (TUNEDOC_TEST_OOM_BUDGET): make the forward raise torch.OutOfMemoryError above the budget."""
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
        need = ids.shape[0] * ids.shape[1] * (0.5 if get_grad_ckpt() else 1.0)
        if need > budget:
            raise torch.OutOfMemoryError(
                f"CUDA out of memory (injected by {TEST_BUDGET_ENV}={budget}: batch needs {need:.0f})"
            )

    model.register_forward_pre_hook(hook, with_kwargs=True)
