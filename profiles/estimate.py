"""Peak VRAM of a QLoRA/LoRA training step, from config.json and a profile: no weights, no torch.

The model follows what the tensors of one training step are, on the stack tunedoc trains with (transformers 5,
PEFT, bitsandbytes, the HF Trainer with bf16 autocast):

    peak = static + stored activations + max(loss peak, one layer's recompute + its gradients)
    static = quantized weights + their constants + 16-bit parts + LoRA params, grads, optimizer states
    device total = peak allocated + allocator overhead + CUDA context

Everything that is not in the profile but moves memory (attention kernel, how the loss is computed, whether the
16-bit parts are upcast to fp32, adapter dtype) lives in `Stack`, so a measured row from another framework can say
how it ran (torchtune: chunked loss, bf16 adapters) instead of being special-cased.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tunedoc.profiles.archs import ModelShape, model_shape, prequantized
from tunedoc.profiles.corrections import correction_for
from tunedoc.profiles.profile import Profile

GiB = float(2**30)

# bitsandbytes NF4: 64 weights share one absmax. Without double quantization it is fp32 (4 bytes / 64 weights);
# with it, the absmax is 8-bit and every 256 absmax values share one fp32 second-level constant.
NF4_BLOCK = 64
DQ_BLOCK = 256

# Bytes per (token x vocab) at the loss peak. transformers' ForCausalLMLoss upcasts the whole logits to fp32:
# the fp32 copy (4), log_softmax's saved output (4) and, in backward, its gradient (4) live together; the bf16
# logits (2) overlap in the forward. A chunked loss (torchtune's CEWithChunkedOutputLoss, 8 chunks) keeps the bf16
# logits (2) and upcasts one chunk at a time.
# transformers 4.46-4.49 also made a contiguous fp32 copy of the shifted logits (16).
# tunedoc's loss_impl=plain is the same as hf: the shifted fp32 copy, log_softmax's output, its gradient.
LOSS_BYTES = {"hf": 12.0, "hf-shift": 16.0, "chunked": 2.0 + 12.0 / 8}
# tunedoc's chunked loss (trainer/loss.py): the lm_head runs on LOSS_CHUNK_BYTES / (4 x vocab) tokens at a time
# (about 256 MiB of fp32 logits). Per chunk token x vocab: the logits in the compute dtype (2), their fp32 copy (4),
# which becomes the gradient in place, and the gradient cast back to the compute dtype (2) plus one fp32 temporary
# of the log-sum-exp (2 on average): CHUNK_BYTES_PER = 10. Kept for backward instead of logits: the gradient of
# the hidden states, tokens x hidden in the lm_head's dtype (fp32 after prepare_model_for_kbit_training).
# loss_impl=fused (Liger-Kernel) chunks by its own rule (about tokens x hidden logits per chunk): budgeted as
# chunked, which is the larger of the two for vocabularies above the hidden size.
LOSS_CHUNK_BYTES = 256 * 2**20
CHUNK_BYTES_PER = 10.0
# Gemma 2's final logit softcapping (logits / cap -> tanh -> * cap) keeps two more bf16 copies.
SOFTCAP_BYTES = 4.0


@dataclass
class Stack:
    """How the training code uses memory, beyond the profile. Defaults: tunedoc's trainer (HF + PEFT + bnb)."""

    loss: str | None = None
    """None: follow the profile's loss_impl (tunedoc's trainer: plain -> hf, else tunedoc's chunked loss, "tunedoc").
    hf: full-vocabulary fp32 upcast in the loss (transformers 5); hf-shift: transformers 4.46-4.49, which also
    copied the shifted fp32 logits; chunked: full bf16 logits, fp32 one chunk at a time (torchtune)."""
    kbit_prep: bool = True
    """peft.prepare_model_for_kbit_training (as TRL and most QLoRA recipes call it) upcasts every non-quantized
    parameter (embeddings, lm_head, norms, MoE experts) to fp32."""
    lora_dtype: str = "fp32"
    """PEFT keeps adapter weights in fp32 (autocast_adapter_dtype); torchtune uses bf16."""
    experts_quantized: bool = False
    """transformers 5 stores MoE experts as 3-D tensors, which bitsandbytes does not quantize."""
    compiled: bool = False
    """torch.compile: pointwise ops (norm internals, activation functions, casts) are fused and recomputed in
    backward, so a layer keeps little more than its matmul inputs; the chunked loss fuses its fp32 upcast."""
    offload_activations: bool | None = None
    """None: follow the profile (grad_ckpt = "offload"). Checkpointed layer inputs are moved to CPU RAM (torchtune enable_activation_offloading, Unsloth's
    "unsloth" checkpointing): only one layer's input stays on the GPU."""
    cuda_context_gb: float = 0.45
    """CUDA context, cuBLAS and kernels loaded by torch and bitsandbytes (0.3-0.6 GiB by driver and GPU)."""
    overhead_frac: float = 0.07
    """Caching-allocator slack, as a fraction of the peak allocated (fragmentation, block rounding)."""


@dataclass
class Estimate:
    total_gb: float
    breakdown: dict[str, float]
    assumptions: list[str]
    unit: str = "GiB"
    kind: str = "reserved"  # total = peak reserved by PyTorch's allocator + the CUDA context (what nvidia-smi shows)
    correction: dict | None = None
    details: dict = field(default_factory=dict)  # parameter counts, tokens, ... for screens and --json

    def figure(self, kind: str) -> float:
        """The estimate as a given measurement reports it: "allocated" (torch.cuda.max_memory_allocated),
        "reserved" (max_memory_reserved) or "device" (nvidia-smi, or the card's capacity)."""
        b = self.breakdown
        device = self.total_gb
        if kind == "device":
            return device
        reserved = device - b.get("cuda_context", 0.0)
        if kind == "reserved":
            return reserved
        if kind == "allocated":
            return reserved - b.get("allocator_overhead", 0.0)
        raise ValueError(f"unknown measurement kind {kind!r}; use allocated, reserved or device")

    def to_dict(self) -> dict:
        return {"total_gb": round(self.total_gb, 3), "breakdown": {k: round(v, 3) for k, v in self.breakdown.items()},
                "assumptions": self.assumptions, "unit": self.unit, "kind": self.kind, "correction": self.correction,
                "details": self.details}


BREAKDOWN_LABELS = {
    "quantized_weights": "quantized weights",
    "quant_constants": "quantization constants",
    "weights_16bit": "unquantized weights",
    "lora_params": "LoRA parameters",
    "lora_grads": "LoRA gradients",
    "optimizer_states": "optimizer states",
    "activations": "activations",
    "logits_loss": "logits and loss",
    "layer_backward": "one layer's recompute and gradients",
    "cuda_context": "CUDA context",
    "allocator_overhead": "allocator overhead",
    "correction": "correction from measured runs",
}


def estimate(config: dict, profile: Profile, gpu: str | None = None, seq: int | None = None, attn: str = "sdpa",
             *, stack: Stack | None = None, corrections: bool = True) -> Estimate:
    """Peak VRAM of training `config`'s model with `profile` (GiB, device total; see Estimate.figure).

    `seq` overrides profile.cutoff_len; `attn` is sdpa, flash or eager; `gpu` names the card, used to apply
    corrections recorded from earlier runs on it (profiles.corrections).
    """
    if attn not in ("sdpa", "flash", "eager"):
        raise ValueError(f"attn={attn!r}: choose sdpa, flash or eager")
    stack = stack or Stack()
    if stack.loss is None:  # tunedoc's own trainer: the profile says
        stack = replace(stack, loss="hf" if profile.loss_impl == "plain" else "tunedoc")
    if stack.offload_activations is None:
        stack = replace(stack, offload_activations=profile.grad_ckpt == "offload")
    if stack.loss not in LOSS_BYTES and stack.loss != "tunedoc":
        raise ValueError(f"loss={stack.loss!r}: choose one of {', '.join([*LOSS_BYTES, 'tunedoc'])}")
    shape = model_shape(config)
    seq = int(seq or profile.cutoff_len)
    if seq < 1:
        raise ValueError("seq must be at least 1")
    tokens = seq * profile.micro_batch
    notes: list[str] = []
    b: dict[str, float] = {}

    act = 4 if profile.precision == "fp32" else 2  # activation / compute dtype bytes
    # a pre-quantized checkpoint (config.json quantization_config) is loaded as it is stored: its quantization,
    # not the profile's, decides the linear weights' memory
    pq = prequantized(config)
    quant = profile.quant
    if pq is not None:
        if pq.method == "bitsandbytes":
            quant = pq.quant if pq.quant in ("nf4", "nf4-dq", "int8") else "nf4"  # fp4 stores as nf4 does
        elif pq.bits is None:
            raise ValueError(f"the checkpoint is pre-quantized with {pq.method}, whose storage the estimator does "
                             f"not know; {pq.why}")
        else:
            quant = "prequantized"
    quantized = quant != "none"

    # --- weights ------------------------------------------------------------------------------------------
    q_params = shape.linear_params + (shape.expert_params if (stack.experts_quantized or quant == "prequantized")
                                      else 0)
    if quant == "prequantized":
        b["quantized_weights"] = q_params * pq.bits / 8
        b["quant_constants"] = pq.constant_bytes(q_params)
    elif quant in ("nf4", "nf4-dq"):
        b["quantized_weights"] = q_params * 0.5
        blocks = q_params / NF4_BLOCK
        b["quant_constants"] = blocks * (1 + 4 / DQ_BLOCK) if quant == "nf4-dq" else blocks * 4
    elif quant == "int8":
        b["quantized_weights"] = q_params * 1.0
        b["quant_constants"] = q_params / shape.hidden * 4  # one fp32 scale per output row
    else:
        b["quantized_weights"] = 0.0
        b["quant_constants"] = 0.0
    sixteen = shape.embed_params + shape.lm_head_params + shape.norm_params + shape.router_params
    if not (quantized and (stack.experts_quantized or quant == "prequantized")):
        sixteen += shape.expert_params
    if not quantized:
        sixteen += shape.linear_params
    # peft's prepare_model_for_kbit_training upcasts the 16-bit parts of bitsandbytes models, not of GPTQ/AWQ ones
    upcast = quantized and stack.kbit_prep and quant != "prequantized"
    w_bytes = 4 if (upcast or profile.precision == "fp32") else 2
    b["weights_16bit"] = sixteen * w_bytes

    if pq is not None:
        notes.append(f"pre-quantized checkpoint ({pq.text}, from config.json's quantization_config): "
                     f"{q_params / 1e9:.2f} B linear weights loaded as stored"
                     + (f" at {pq.bits:g} bits with their scales" if quant == "prequantized" else "")
                     + (f"; the profile's quant={profile.quant} does not apply" if profile.quant != quant else ""))
        if not pq.trainable:
            notes.append(f"tunedoc train cannot train this checkpoint: {pq.why}; the figure is LoRA on its own "
                         "kernels (peft, as LLaMA-Factory trains it)")
    if quantized and quant != "prequantized":
        notes.append(f"{quant}: {q_params / 1e9:.2f} B linear weights quantized "
                     f"({'4-bit, block 64' if quant != 'int8' else '8-bit LLM.int8'}"
                     f"{', double-quantized constants' if quant == 'nf4-dq' else ''})")
    parts = "embeddings" + ("" if shape.tied_embeddings else ", lm_head") + ", norms"
    if shape.experts:
        parts += ", MoE router"
    notes.append(f"kept unquantized in {'fp32' if w_bytes == 4 else 'bf16'}: {parts}"
                 + (" (prepare_model_for_kbit_training upcasts them)" if upcast else "")
                 + ("; tied lm_head shares the embedding" if shape.tied_embeddings else ""))
    if shape.experts and not (quantized and stack.experts_quantized):
        notes.append(f"MoE: {shape.expert_params / 1e9:.1f} B expert weights stay {'fp32' if w_bytes == 4 else 'bf16'}"
                     + (": transformers 5 stores experts as 3-D tensors that bitsandbytes does not quantize"
                        " and LoRA all-linear does not target" if quantized else ""))

    # --- LoRA ---------------------------------------------------------------------------------------------
    lora_linears = shape.lora_linears(profile.lora_targets)
    if not lora_linears:
        raise ValueError(f"lora_targets {profile.lora_targets!r} match no linear layer of {shape.model_type}; "
                         f"its layers: {', '.join(l.name for l in shape.attn_linears + shape.mlp_linears)}")
    lora_n = sum((lin.d_in + lin.d_out) * profile.lora_r * lin.count * n for lin, n in lora_linears)
    lora_bytes = 4 if stack.lora_dtype == "fp32" else 2
    b["lora_params"] = lora_n * lora_bytes
    b["lora_grads"] = lora_n * lora_bytes
    opt_bytes = 8 if profile.optimizer == "adamw" else 2
    b["optimizer_states"] = lora_n * opt_bytes
    notes.append(f"LoRA r={profile.lora_r} on {_targets_text(profile)}: {lora_n / 1e6:.1f} M params in "
                 f"{stack.lora_dtype} + gradients + {profile.optimizer} states ({opt_bytes} bytes/param)")

    # --- activations --------------------------------------------------------------------------------------
    per_layer = _layer_activation_bytes(shape, profile, attn, seq, act, lora_linears, stack.compiled)
    outside = tokens * 8 * shape.hidden  # embedding output, final norm, lm_head input
    if profile.checkpointing:
        # offload: the layer inputs wait in pinned CPU RAM; one is on the GPU at a time (copied back for its
        # layer's recompute; the torchtune row in measured/published.toml calibrates this)
        kept = 1 if stack.offload_activations else shape.layers
        stored = kept * tokens * act * shape.hidden + outside
        recompute = per_layer * tokens
        notes.append(f"gradient checkpointing: keeps each layer's input, recomputes one layer at a time "
                     f"({recompute / GiB:.2f} GiB for the largest)")
        if stack.offload_activations:
            host = shape.layers * tokens * act * shape.hidden
            notes.append(f"activation offload: the {shape.layers} layer inputs ({host / GiB:.2f} GiB) wait in "
                         "pinned CPU RAM, not on the GPU; PCIe copies make steps about 10-20 % slower")
    else:
        stored = shape.layers * per_layer * tokens + outside
        recompute = 0.0
        notes.append(f"no gradient checkpointing: all {shape.layers} layers keep their activations "
                     f"({per_layer * tokens / GiB:.2f} GiB each)")
    grad_transient = tokens * act * 2 * (_widest_mlp(shape) + shape.hidden)
    if quantized:  # bitsandbytes dequantizes one weight at a time to bf16 for the matmul
        grad_transient += max(l.d_in * l.d_out for l in shape.attn_linears + shape.mlp_linears) * 2
    if stack.loss == "tunedoc":
        chunk = min(tokens, loss_chunk_tokens(shape.vocab))
        # softcapping works in place on the fp32 chunk (tanh kept for its gradient: 4 more bytes)
        per = CHUNK_BYTES_PER + (4 if shape.final_logit_softcap else 0)
        head_bytes = 4 if (upcast or profile.precision == "fp32") else act
        loss = chunk * shape.vocab * per + tokens * shape.hidden * head_bytes
    else:
        loss_bytes = 2.5 if (stack.compiled and stack.loss == "chunked") else LOSS_BYTES[stack.loss]
        loss = tokens * shape.vocab * (loss_bytes + (SOFTCAP_BYTES if shape.final_logit_softcap else 0))
    b["activations"] = stored
    backward = recompute + grad_transient
    if loss >= backward:
        b["logits_loss"] = loss
        peak_term = "loss"
    else:
        b["layer_backward"] = backward
        peak_term = "backward through one layer"
    notes.append(f"sequence {seq} x micro-batch {profile.micro_batch} = {tokens} tokens per step, "
                 + ("rows packed to full length" if profile.packing else
                    "rows up to cutoff_len (not packed: the worst case, shorter batches take less)")
                 + f"; attention {attn}"
                 + (f" stores heads x seq^2 scores" if attn == "eager" else " (no seq^2 term)"))
    if stack.loss == "tunedoc":
        loss_desc = (f"loss_impl={profile.loss_impl}: the lm_head and loss run {chunk} tokens at a time, the full "
                     "logits are never held")
    elif stack.loss.startswith("hf"):
        loss_desc = "the full logits upcast to fp32 for the loss" + (
            " (loss_impl=plain; chunked would save most of it)" if profile.loss_impl == "plain" else "")
    else:
        loss_desc = "loss computed in fp32 one chunk at a time"
    notes.append(f"{loss_desc}: {loss / GiB:.2f} GiB for {tokens} tokens x vocabulary {shape.vocab}"
                 + (" (+ final logit softcapping)" if shape.final_logit_softcap else "")
                 + f"; the peak is at the {peak_term}")
    if shape.attn_logit_softcap and attn != "eager":
        notes.append("Gemma 2 attention softcapping: transformers may need eager attention (--attn eager), "
                     "which adds a seq^2 term")

    # --- runtime ------------------------------------------------------------------------------------------
    allocated = sum(b.values())
    b["allocator_overhead"] = allocated * stack.overhead_frac
    b["cuda_context"] = stack.cuda_context_gb * GiB
    notes.append(f"CUDA context {stack.cuda_context_gb:.2f} GiB and allocator slack {stack.overhead_frac:.0%} of "
                 "the peak allocated (PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True shrinks the slack)")

    # FSDP units (profiles/multi.py, trainer/fsdp.py): the largest decoder layer's parameters and the root's
    # (embeddings, lm_head), in the dtype FSDP all-gathers them in: the packed 4-bit bytes as stored, the rest cast
    # to the compute dtype by its mixed precision (fp32 on the CPU); a pre-quantized checkpoint's weights as stored
    q_byte = pq.bits / 8 if quant == "prequantized" else {"nf4": 0.5, "nf4-dq": 0.5, "int8": 1.0}.get(quant, act)
    moe = shape.moe_layers > 0
    expert_byte = q_byte if (quantized and (stack.experts_quantized or quant == "prequantized")) else act
    layer_gather = (shape.linear_params / shape.layers * q_byte
                    + ((shape.expert_params_per_layer * expert_byte + shape.router_params_per_layer * act) if moe else 0)
                    + shape.norm_params / shape.layers * act + lora_n / shape.layers * act)
    root_gather = (shape.embed_params + shape.lm_head_params) * act

    breakdown = {k: v / GiB for k, v in b.items()}
    total = sum(breakdown.values())
    est = Estimate(total_gb=total, breakdown=breakdown, assumptions=notes, details={
        "model_type": shape.model_type, "params": shape.total_params, "quantized_params": q_params if quantized else 0,
        "lora_params": lora_n, "seq": seq, "micro_batch": profile.micro_batch, "tokens": tokens, "attn": attn,
        "profile": profile.name, "gpu": gpu,
        "prequantized": None if pq is None else {"method": pq.method, "bits": pq.bits, "group_size": pq.group_size,
                                                 "text": pq.text, "trainable": pq.trainable, "why": pq.why or None},
        "fsdp": {"layers": shape.layers, "layer_gb": layer_gather / GiB, "root_gb": root_gather / GiB,
                 "packed_4bit": quant in ("nf4", "nf4-dq")},
    })
    if corrections and gpu:
        est = apply_correction(est, gpu, shape.model_type)
    return est


def loss_chunk_tokens(vocab: int, budget_bytes: int = LOSS_CHUNK_BYTES) -> int:
    """Tokens per chunk of tunedoc's chunked loss: about `budget_bytes` of fp32 logits, 64 to 8192 tokens
    (trainer/loss.py uses the same rule)."""
    return int(max(64, min(8192, budget_bytes // (4 * max(1, vocab)))))


def apply_correction(est: Estimate, gpu_name: str, model_type: str) -> Estimate:
    """Scale the reserved part of `est` by the recorded factor; the change is a visible breakdown line."""
    corr = correction_for(gpu_name, model_type)
    if corr is None:
        return est
    delta = est.figure("reserved") * (corr["factor"] - 1)
    breakdown = dict(est.breakdown)
    breakdown["correction"] = delta
    return replace(est, total_gb=est.total_gb + delta, breakdown=breakdown, correction=corr,
                   assumptions=est.assumptions + [corr["text"]])


def _targets_text(profile: Profile) -> str:
    t = profile.lora_targets
    return "all linear layers" if t == "all-linear" else ", ".join(t)


def _widest_mlp(shape: ModelShape) -> int:
    widths = [shape.intermediate if shape.dense_layers else 0,
              shape.experts_per_token * shape.expert_intermediate if shape.experts else 0]
    return max(widths)


def _layer_activation_bytes(shape: ModelShape, profile: Profile, attn: str, seq: int, act: int,
                            lora_linears, compiled: bool = False) -> float:
    """Bytes one decoder layer keeps for backward, per token (forward without checkpointing)."""
    h, hq, hkv = shape.hidden, shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    if compiled:
        # matmul inputs only: the normed inputs, q/k/v and attention output, gate and up outputs
        mlp_w = (shape.experts_per_token * shape.expert_intermediate) if shape.experts else shape.intermediate
        dropout = sum(lin.d_in * n for lin, n in lora_linears) / shape.layers if profile.lora_dropout > 0 else 0
        eager = shape.heads * seq * (4 + act) if attn == "eager" else 0
        return act * (shape.norms_per_layer * h + 3 * hq + 2 * hkv + 2 * mlp_w) + dropout + eager
    # RMSNorm in fp32: the fp32 input and the normalized bf16 output
    norms = shape.norms_per_layer * (4 + act) * h
    # q, k, v after rotary, the attention output and the o_proj input (a contiguous copy)
    attention = act * (3 * hq + 2 * hkv)
    if attn == "eager":
        # k, v repeated to all heads, and the fp32 softmax plus its bf16 copy per head and key position
        attention += act * 2 * (hq - hkv) + shape.heads * seq * (4 + act)
        if shape.attn_logit_softcap:
            attention += shape.heads * seq * 2 * act
    # MLP: gate, up, activation and product (4 tensors of the intermediate width)
    if shape.experts:
        k = shape.experts_per_token
        mlp_moe = act * 4 * k * shape.expert_intermediate + act * 2 * k * h + 4 * shape.experts
        mlp_moe += sum(act * 4 * l.d_out for l in shape.shared_expert_linears if "down" not in l.name) // 2
        mlp = (mlp_moe * shape.moe_layers + act * 4 * shape.intermediate * shape.dense_layers) / shape.layers
    else:
        mlp = act * 4 * shape.intermediate
    # LoRA: each adapter keeps its (autocast) input, plus a dropout mask when dropout > 0
    per_in = act + (1 if profile.lora_dropout > 0 else 0)
    lora = sum(per_in * lin.d_in * n for lin, n in lora_linears) / shape.layers
    return norms + attention + mlp + lora


def with_overrides(profile: Profile, **fields) -> Profile:
    """A copy of `profile` with some fields changed (validated)."""
    return Profile.from_dict({**profile.to_dict(), **fields}) if fields else replace(profile)
