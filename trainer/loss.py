"""The training loss without the full logits: cross-entropy over chunks of the final hidden states.

The plain loss (`loss_impl = "plain"`) lets the model compute logits for every token and upcasts them to fp32:
for a 150k vocabulary at 4096 tokens that is ~2.5 GB of fp32 logits per sample and as much again for their
gradient. Here the lm_head is applied one chunk of tokens at a time (`chunk_tokens`, about 256 MiB of fp32 logits
per chunk), each chunk is scored and dropped. As Liger-Kernel's fused linear cross-entropy does, the gradient of
the chunk's loss with respect to its hidden states is computed in the same pass (softmax minus one-hot, times the
lm_head weight) and only that (tokens x hidden) tensor is kept for backward; the backward pass scales it by the
incoming gradient. So nothing is recomputed and the lm_head matmuls are the same two per token as the plain loss
(forward and input gradient): same speed, a fraction of the memory. The lm_head weight is frozen in LoRA; when
it is trainable its gradient is accumulated per chunk too.

- `chunked`: that torch version, on any device.
- `fused`: Liger-Kernel's `LigerFusedLinearCrossEntropyLoss` (Triton; CUDA only), from the `[fast]` extra.
- `auto` (default): fused on CUDA when Liger is installed, else chunked; plain for heads it cannot reproduce
  (a scaled head: Cohere's logit_scale, Granite's logits_scaling).
- `plain`: the model's logits, upcast to fp32, then cross-entropy (the reference).

All of them: loss on the tokens whose label is not -100 (assistant tokens), labels shifted by one, summed.
torch is imported inside the functions.
"""

from __future__ import annotations

LOSS_IMPLS = ("auto", "chunked", "fused", "plain")
IGNORE = -100
LIGER_PIP = "pip install 'tunedoc[fast]'  (or: pip install liger-kernel)"


class LossUnavailable(RuntimeError):
    """loss_impl=fused where Liger-Kernel cannot run; the message says what to install."""


def liger_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("liger_kernel") is not None


def triton_capable(device) -> bool:
    """Liger's Triton kernels need a GPU of compute capability 7.0 (Volta) or newer."""
    try:
        import torch

        return torch.cuda.get_device_capability(device) >= (7, 0)
    except Exception:  # noqa: BLE001 - no CUDA, or the device cannot be asked: not for Triton
        return False


def unsupported_head(config) -> str | None:
    """Why the chunked loss would not reproduce this model's logits (None: it does)."""
    for attr in ("logit_scale", "logits_scaling"):
        value = getattr(config, attr, None)
        if value not in (None, 1, 1.0):
            return f"the model scales its logits ({attr}={value})"
    return None


def resolve(loss_impl: str, device: str, config=None) -> tuple[str, str | None]:
    """(the loss that runs: chunked | fused | plain, a note for the user or None). Raises LossUnavailable for
    loss_impl=fused without Liger or without CUDA."""
    if loss_impl not in LOSS_IMPLS:
        raise ValueError(f"loss_impl={loss_impl!r}: choose one of {', '.join(LOSS_IMPLS)}")
    why = unsupported_head(config) if config is not None else None
    cuda = str(device).startswith("cuda")
    if loss_impl == "fused":
        if not liger_available():
            raise LossUnavailable("loss_impl=fused needs Liger-Kernel, which is not installed: " + LIGER_PIP
                                  + "; or use loss_impl=chunked (the same memory saving in plain torch)")
        if not cuda:
            raise LossUnavailable("loss_impl=fused runs Liger-Kernel's Triton kernel, which needs a CUDA GPU; "
                                  "use loss_impl=chunked (or auto) on this device")
        if not triton_capable(device):
            raise LossUnavailable("loss_impl=fused: Liger-Kernel's Triton kernels need a GPU of compute capability "
                                  "7.0 or newer; use loss_impl=chunked (or auto)")
        if why:
            raise LossUnavailable(f"loss_impl=fused cannot be used here: {why}; use loss_impl=plain")
        return "fused", None
    if loss_impl == "plain":
        return "plain", None
    if why:
        return "plain", f"loss_impl={loss_impl}: computing the full logits because {why}"
    if loss_impl == "auto" and cuda and liger_available() and triton_capable(device):
        return "fused", None
    return "chunked", None


def chunk_tokens(vocab: int, budget_bytes: int | None = None) -> int:
    """Tokens per chunk: about `budget_bytes` (256 MiB) of fp32 logits, between 64 and 8192 tokens."""
    from tunedoc.profiles.estimate import LOSS_CHUNK_BYTES

    budget = LOSS_CHUNK_BYTES if budget_bytes is None else budget_bytes
    return int(max(64, min(8192, budget // (4 * max(1, vocab)))))


def _chunk_grad(h, weight, bias, target, softcap, want_grad: bool):
    """Loss sum of one chunk and, when asked, d(loss)/d(h) and d(loss)/d(weight) factors (grad of logits)."""
    import torch

    logits = h @ weight.t() if bias is None else torch.addmm(bias, h, weight.t())
    logits = logits.float()
    if softcap:
        t = torch.tanh(logits / softcap)
        logits = t * softcap
    valid = target != IGNORE
    safe = torch.where(valid, target, torch.zeros_like(target))
    lse = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = ((lse - picked) * valid).sum()
    if not want_grad:
        return loss, None
    # d(loss)/d(logits) = softmax - one_hot on valid rows, 0 elsewhere; computed in place on the fp32 logits
    grad = logits.sub_(lse.unsqueeze(1)).exp_()
    grad.scatter_add_(1, safe.unsqueeze(1), -torch.ones_like(lse).unsqueeze(1))
    grad.mul_(valid.unsqueeze(1))
    if softcap:
        grad.mul_(1 - t * t)
    return loss, grad.to(h.dtype)


def _make_function():
    import torch

    class ChunkedLinearCrossEntropy(torch.autograd.Function):
        """sum over tokens of CE(h @ W.T + b, target), chunk by chunk; gradients computed in forward."""

        @staticmethod
        def forward(ctx, hidden, weight, bias, target, chunk, softcap, grad_enabled):
            # grad mode is off inside forward: the caller says whether a backward will come
            need_h = grad_enabled and ctx.needs_input_grad[0]
            need_w = grad_enabled and ctx.needs_input_grad[1]
            need_b = grad_enabled and bias is not None and ctx.needs_input_grad[2]
            total = hidden.new_zeros((), dtype=torch.float32)
            grad_h = torch.zeros_like(hidden) if need_h else None
            grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_w else None
            grad_b = torch.zeros_like(bias, dtype=torch.float32) if need_b else None
            for start in range(0, hidden.shape[0], chunk):
                h, t = hidden[start:start + chunk], target[start:start + chunk]
                if not bool((t != IGNORE).any()):
                    continue  # prompt-only chunk: no loss, no gradient
                loss, g = _chunk_grad(h, weight, bias, t, softcap, need_h or need_w or need_b)
                total += loss
                if g is not None:
                    if need_h:
                        grad_h[start:start + chunk] = g @ weight
                    if need_w:
                        grad_w.addmm_(g.t().float(), h.float())
                    if need_b:
                        grad_b += g.float().sum(0)
                del g
            ctx.save_for_backward(*(x for x in (grad_h, grad_w, grad_b) if x is not None))
            ctx.has = (need_h, need_w, need_b)
            ctx.dtypes = (weight.dtype, None if bias is None else bias.dtype)
            return total

        @staticmethod
        def backward(ctx, grad_out):
            saved = list(ctx.saved_tensors)
            need_h, need_w, need_b = ctx.has
            gh = saved.pop(0) * grad_out if need_h else None
            gw = (saved.pop(0) * grad_out).to(ctx.dtypes[0]) if need_w else None
            gb = (saved.pop(0) * grad_out).to(ctx.dtypes[1]) if need_b else None
            return gh, gw, gb, None, None, None, None

    return ChunkedLinearCrossEntropy


_FN = None


def chunked_linear_cross_entropy(hidden, weight, target, bias=None, chunk: int | None = None,
                                 softcap: float | None = None):
    """Sum of cross-entropy over the rows of `hidden` (N x H) against `target` (N; -100 ignored), with logits
    `hidden @ weight.T + bias` computed `chunk` rows at a time and never all at once."""
    import torch

    global _FN
    if _FN is None:
        _FN = _make_function()
    chunk = chunk or chunk_tokens(weight.shape[0])
    return _FN.apply(hidden, weight, bias, target, int(chunk), softcap, torch.is_grad_enabled())


def fused_linear_cross_entropy(hidden, weight, target, bias=None, softcap: float | None = None):
    """Liger-Kernel's fused linear cross-entropy (CUDA), summed."""
    from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

    kwargs = {"ignore_index": IGNORE, "reduction": "sum"}
    if softcap:
        kwargs["softcap"] = softcap
    out = LigerFusedLinearCrossEntropyLoss(**kwargs)(weight, hidden, target, bias)
    return out[0] if isinstance(out, tuple) else out


def head_has_adapter(head) -> bool:
    """True when the lm_head is a PEFT LoRA layer (lora_targets includes lm_head): its output is the frozen weight's
    plus the adapter's, which only the module's own forward computes, so the loss must be the plain one."""
    return bool(getattr(head, "lora_A", None))


def _base(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_of(model):
    """The decoder stack (embeddings, layers, final norm) of a causal LM, plain or PEFT-wrapped: what returns the
    final hidden states without the lm_head."""
    base = _base(model)
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else None
    return decoder if decoder is not None else base.model


def causal_lm_loss(model, batch: dict, impl: str) -> tuple:
    """(loss summed over the assistant tokens, their count) for a causal LM (plain or PEFT-wrapped).

    `impl` is what `resolve` returned. chunked/fused call the decoder for the final hidden states (the lm_head is
    never applied to the whole sequence) and score them against the labels shifted by one; plain is the model's
    own forward and a full fp32 cross-entropy, as the recipe always computed it.
    """
    import torch.nn.functional as F

    batch = dict(batch)
    labels = batch.pop("labels")
    target = labels[:, 1:]
    count = int((target != IGNORE).sum())
    if impl == "plain":
        logits = model(**batch).logits
        logits = logits[:, :-1].float()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE,
                               reduction="sum"), count
    base = _base(model)
    head = base.get_output_embeddings()
    if head_has_adapter(head):  # LoRA on the lm_head: the chunks would apply its frozen weight alone
        return causal_lm_loss(model, {**batch, "labels": labels}, "plain")
    decoder = decoder_of(model)
    hidden = decoder(**batch).last_hidden_state[:, :-1]
    h = hidden.reshape(-1, hidden.shape[-1])
    if h.dtype != head.weight.dtype:  # prepare_model_for_kbit_training keeps the lm_head in fp32
        h = h.to(head.weight.dtype)
    softcap = getattr(base.config, "final_logit_softcapping", None)
    t = target.reshape(-1)
    bias = getattr(head, "bias", None)
    if impl == "fused":
        return fused_linear_cross_entropy(h, head.weight, t, bias, softcap), count
    return chunked_linear_cross_entropy(h, head.weight, t, bias, softcap=softcap), count
