"""Sharded training (`--strategy fsdp`): torch's FSDP2 (`torch.distributed.fsdp.fully_shard`) over the recipe's model.

tunedoc shards nothing itself: FSDP2 splits every parameter over the ranks (each keeps 1/N of it as a DTensor
shard), all-gathers a unit's parameters just before it computes and frees them after, and reduce-scatters the
gradients so each rank keeps only its shard of the LoRA gradients and optimizer states. What this module adds is
the plan (which modules are units, in which dtypes) and the state-dict plumbing for tunedoc's checkpoints:

- `plan()` (pure, no torch): every decoder layer is a unit; the root is the recipe's loss module (the model's
  embeddings, final norm and lm_head), kept unsharded from forward to backward as FSDP2 does for roots. For QLoRA
  the packed 4-bit weights are stored in the compute dtype (`bnb_4bit_quant_storage`, as the PEFT docs' "FSDP +
  QLoRA" and Answer.AI do) so that FSDP can shard and all-gather them with the rest; mixed precision casts the
  parameters to the compute dtype for the all-gather and reduces gradients in fp32.
- `shard()` applies it with fully_shard. FSDP2 takes parameters with mixed requires_grad in one unit (the frozen
  base weights are gathered, never reduced; only trainable parameters must share a dtype: the LoRA weights, fp32).
- `lora_state()` / `optimizer_state()` / `load_optimizer_state()`: the full (unsharded) LoRA weights and optimizer
  states, gathered by every rank and kept by rank 0, so an fsdp run's checkpoints and adapter are the same files
  as a ddp or one-GPU run's (an fsdp run resumes from them; the adapter loads anywhere). Only the LoRA weights are
  gathered, never the base model.
- the low-memory load (`manifest()`, `build_on_meta()`, `share_quant_states()`, `materialize()`, below): rank 0
  alone reads the model, in CPU RAM; the others build it on the meta device, and torch's set_model_state_dict
  (broadcast_from_rank0) fills every rank's shards after fully_shard, so no GPU ever holds the whole model: a model
  whose 4-bit weights fit no single card loads. The recipe falls back to the simple path (every rank loads the
  whole model on its device, then shards it) when the meta ranks cannot rebuild rank 0's model, or when asked
  (TUNEDOC_FSDP_LOAD=full); trainer.log's `fsdp load:` lines say which ran.

Gradient accumulation: the gradients are reduce-scattered after every micro-batch and FSDP2 sums the shards
(torchtune does the same): the sharded LoRA gradients stay 1/N; skipping the sync (`set_requires_gradient_sync`)
would hold every layer's unsharded gradients until the last micro-batch. The loss is scaled as under DDP (FSDP2's
reduce-scatter averages over the ranks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DTYPE_NAMES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@dataclass
class FsdpPlan:
    """What `shard()` does, as plain data (tests and `--json` read it without torch)."""

    units: list[str]
    """The modules fully_shard wraps, innermost first: each decoder layer, then the root."""
    quant_storage: str | None
    """bnb_4bit_quant_storage for 4-bit quantization (None without it): the dtype the packed weights are stored in."""
    param_dtype: str | None
    """MixedPrecisionPolicy.param_dtype: parameters are cast to it before the all-gather (None: kept as stored)."""
    reduce_dtype: str = "float32"
    """MixedPrecisionPolicy.reduce_dtype: the gradients' reduce-scatter dtype."""
    grad_scaler: str | None = None
    """fp16 on a GPU: FSDP's ShardedGradScaler (the gradients are sharded DTensors)."""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"units": self.units, "quant_storage": self.quant_storage, "param_dtype": self.param_dtype,
                "reduce_dtype": self.reduce_dtype, "grad_scaler": self.grad_scaler, "notes": self.notes}


class FsdpUnsupported(ValueError):
    """This profile cannot be sharded (the message says why and what to use instead)."""


def check_quant(quant: str) -> None:
    """Raises FsdpUnsupported for a quant FSDP cannot shard (`tunedoc estimate --strategy fsdp` asks it too)."""
    if quant == "int8":
        raise FsdpUnsupported("strategy=fsdp with quant=int8: bitsandbytes' 8-bit weights keep their scales beside "
                              "the int8 data and FSDP cannot shard them; use quant=nf4 (FSDP-QLoRA) or "
                              "strategy=ddp")


def plan(quant: str, compute_dtype: str, device: str, layers: int, layer_path: str = "model.layers") -> FsdpPlan:
    """The sharding plan for a model with `layers` decoder layers at `layer_path`, quantized per `quant`, computing
    in `compute_dtype` ("bfloat16", "float16", "float32" or bf16/fp16/fp32) on `device` ("cuda"/"cpu")."""
    dtype = DTYPE_NAMES.get(compute_dtype, compute_dtype).replace("torch.", "")
    check_quant(quant)
    units = [f"{layer_path}.{i}" for i in range(layers)] + ["root (embeddings, final norm, lm_head)"]
    notes = [f"{layers} decoder layers and the root are FSDP units: a layer's parameters are all-gathered just "
             "before it runs (the next one prefetched) and freed after; the root's stay gathered from forward "
             "to backward"]
    storage = None
    if quant in ("nf4", "nf4-dq"):
        storage = dtype
        notes.append(f"4-bit weights packed in {dtype} (bnb_4bit_quant_storage) so FSDP shards them with the "
                     "other parameters; their quantization constants stay whole on every rank")
    param_dtype = None if dtype == "float32" else dtype
    if param_dtype:
        notes.append(f"mixed precision: parameters gathered in {dtype}, gradients reduced in float32")
    scaler = "ShardedGradScaler" if dtype == "float16" and device.startswith("cuda") else None
    return FsdpPlan(units=units, quant_storage=storage, param_dtype=param_dtype, grad_scaler=scaler, notes=notes)


def decoder_layers(model):
    """(dotted path, the decoder layers' ModuleList) of a causal LM, plain or PEFT-wrapped."""
    from tunedoc.trainer.loss import decoder_of

    decoder = decoder_of(model)
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise FsdpUnsupported(f"strategy=fsdp: {type(decoder).__name__} has no `layers` list to shard by; use "
                              "strategy=ddp")
    path = next((n for n, m in model.named_modules() if m is layers), "layers")
    return path, layers


def shard(root, model, the_plan: FsdpPlan):
    """fully_shard each decoder layer of `model`, then `root` (the module whose forward computes the loss and that
    holds `model`). Returns `root`, now FSDP-managed: its parameters are DTensor shards."""
    import torch
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    dt = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
    mp = MixedPrecisionPolicy(param_dtype=dt[the_plan.param_dtype] if the_plan.param_dtype else None,
                              reduce_dtype=dt[the_plan.reduce_dtype])
    _, layers = decoder_layers(model)
    for layer in layers:
        fully_shard(layer, mp_policy=mp)
    fully_shard(root, mp_policy=mp)
    return root


def _full(t):
    """A DTensor shard's whole tensor on the CPU (a collective: every rank calls it); a plain tensor as is."""
    full = t.full_tensor() if hasattr(t, "full_tensor") else t
    return full.detach().cpu()


def lora_state(model) -> dict:
    """The trainable (LoRA) parameters of `model`, whole, by their names in `model` (every rank must call it, in the
    same order; the result is the same on every rank)."""
    return {n: _full(p) for n, p in model.named_parameters() if p.requires_grad}


def optimizer_state(root, optimizer) -> dict:
    """The optimizer's states, whole, on rank 0 (other ranks get {}); every rank must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(root, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(root, optimizer, state: dict) -> None:
    """Shard a whole optimizer state (from `optimizer_state`) into `optimizer`; every rank passes the same state."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(root, optimizer, state, options=StateDictOptions(full_state_dict=True))


def grad_norm_value(norm) -> float:
    """clip_grad_norm_ over DTensor gradients returns a DTensor: its value as a float."""
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)


# ------------------------------------------------------------------------------------------------ low-memory load
# As accelerate's `fsdp_cpu_ram_efficient_loading` and Answer.AI's fsdp_qlora `low_memory` do: rank 0 alone loads the
# (quantized) model, in CPU RAM; every other rank builds the same modules on the `meta` device (no storage at all);
# after fully_shard, torch's `set_model_state_dict(..., broadcast_from_rank0=True)` sends rank 0's full tensors one
# by one and each rank keeps only its shard. bitsandbytes' quantization constants (absmax, the nested absmax and
# code, the packed quant-type header) are not parameters: rank 0 sends them apart, module by module, in
# bitsandbytes' own serialized form (`QuantState.as_dict(packed=True)` / `from_dict`).
LOAD_ENV = "TUNEDOC_FSDP_LOAD"
"""`full` forces the simple path (every rank loads the whole model on its device before sharding)."""


class LowMemoryUnavailable(RuntimeError):
    """The other ranks could not rebuild rank 0's model on the meta device (the message names the difference)."""


def low_memory_requested() -> bool:
    import os

    return os.environ.get(LOAD_ENV, "low-memory").strip().lower() not in ("full", "0", "off", "simple")


def manifest(model) -> dict:
    """What the meta ranks must rebuild, as picklable data: each parameter's and buffer's shape and dtype, and for
    bitsandbytes' 4-bit weights their packing (blocksize, quant type, storage dtype)."""
    params, first = {}, {}
    for name, p in model.named_parameters(remove_duplicate=False):
        entry = {"shape": tuple(p.shape), "dtype": p.dtype, "requires_grad": p.requires_grad}
        if id(p) in first:  # a tied weight (lm_head = embed_tokens): the meta ranks tie the same names
            entry["same_as"] = first[id(p)]
        first.setdefault(id(p), name)
        if type(p).__name__ == "Params4bit":
            entry["bnb4"] = {"blocksize": p.blocksize, "compress_statistics": p.compress_statistics,
                             "quant_type": p.quant_type, "quant_storage": p.quant_storage}
        params[name] = entry
    buffers = {name: {"shape": tuple(b.shape), "dtype": b.dtype} for name, b in model.named_buffers()}
    return {"params": params, "buffers": buffers}


def _owner(model, name: str):
    module_path, _, leaf = name.rpartition(".")
    return (model.get_submodule(module_path) if module_path else model), leaf


def build_on_meta(model_path: str, dtype, qconf, man: dict):
    """The model of `model_path` with no storage: transformers builds its modules on `meta` and its bitsandbytes
    quantizer swaps in the 4-bit layers (as from_pretrained does before loading weights); every parameter and
    buffer then takes rank 0's shape and dtype from `man` (4-bit weights packed as rank 0 packed them). Raises
    LowMemoryUnavailable when the two models' names differ."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_path)
    quantizer = None
    if qconf is not None:
        from transformers.quantizers.auto import get_hf_quantizer

        quantizer, config, _ = get_hf_quantizer(config, qconf, {"": "meta"}, True, {})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    if quantizer is not None:
        quantizer.preprocess_model(model=model, dtype=dtype, device_map={"": "meta"}, checkpoint_files=None,
                                   use_kernels=False)
        model.hf_quantizer = quantizer
        quantizer.postprocess_model(model)
    mine = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    if mine != set(man["params"]):
        diff = sorted(mine ^ set(man["params"]))
        raise LowMemoryUnavailable(f"the meta-device model's parameters differ from rank 0's ({len(diff)} names, "
                                   f"e.g. {diff[0]})")
    built: dict[str, torch.nn.Parameter] = {}  # every parameter anew, tied exactly where rank 0's are tied
    for name in list(man["params"]):
        want = man["params"][name]
        module, leaf = _owner(model, name)
        if "same_as" in want:
            setattr(module, leaf, built[want["same_as"]])
            continue
        data = torch.empty(want["shape"], dtype=want["dtype"], device="meta")
        if "bnb4" in want:
            from bitsandbytes.nn import Params4bit

            new = Params4bit(data, requires_grad=False, module=module, bnb_quantized=True, **want["bnb4"])
            module.quant_storage = want["bnb4"]["quant_storage"]
        else:
            new = torch.nn.Parameter(data, requires_grad=want["requires_grad"])
        setattr(module, leaf, new)
        built[name] = new
    for name, b in list(model.named_buffers()):
        want = man["buffers"].get(name)
        if want and (tuple(b.shape) != want["shape"] or b.dtype != want["dtype"]):
            module, leaf = _owner(model, name)
            module._buffers[leaf] = torch.empty(want["shape"], dtype=want["dtype"], device="meta")
    model.config.use_cache = False
    return model


def _linear4bit_modules(model) -> list:
    try:
        import bitsandbytes as bnb
    except Exception:  # noqa: BLE001 - no bitsandbytes: no 4-bit layers
        return []
    return [(n, m) for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)]


def share_quant_states(model, rank: int, device, comm_device) -> int:
    """Rank 0's 4-bit quantization constants onto every rank's 4-bit layers (by module name, the same on every rank),
    placed on `device`; returns their bytes. Every rank calls it, before fully_shard (the 4-bit weights are still
    Params4bit then)."""
    import torch
    import torch.distributed as dist
    from bitsandbytes.functional import QuantState

    mods = _linear4bit_modules(model)
    if not mods:
        return 0
    packed = {n: m.weight.quant_state.as_dict(packed=True) for n, m in mods} if rank == 0 else {}
    layout = [{n: {k: (tuple(v.shape), v.dtype) for k, v in d.items()} for n, d in packed.items()}]
    dist.broadcast_object_list(layout, src=0)
    total = 0
    for name, module in mods:
        parts = {}
        for key, (shape, dt) in layout[0][name].items():
            t = packed[name][key].to(comm_device) if rank == 0 else torch.empty(shape, dtype=dt, device=comm_device)
            dist.broadcast(t, src=0)
            parts[key] = t
            total += t.numel() * t.element_size()
        state = QuantState.from_dict(parts, device=torch.device(device))
        module.quant_state = state
        module.weight.quant_state = state
    return total


def materialize(root, full_state: dict, meta_built: bool, device, comm_device) -> dict:
    """After fully_shard: give every rank's shards their values from rank 0's whole tensors (`full_state`, {} on the
    other ranks), through torch's set_model_state_dict(full_state_dict=True, broadcast_from_rank0=True), and the
    buffers that are not in a state dict (rotary inv_freq) by a broadcast. Returns what this rank now holds:
    {"params_bytes": its shards' bytes, "full_bytes": the whole model's}."""
    import torch
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    if meta_built:
        root.to_empty(device=device)
    keys = set(root.state_dict().keys())
    if full_state:
        full_state = {k: v for k, v in full_state.items() if k in keys}  # not bitsandbytes' absmax & co
    set_model_state_dict(root, full_state, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    for name, buf in root.named_buffers():
        if name not in keys:
            tmp = buf.detach().to(comm_device)
            dist.broadcast(tmp, src=0)
            buf.data.copy_(tmp.to(buf.device))
    held = full = 0
    for p in root.parameters():
        local = p.to_local() if hasattr(p, "to_local") else p
        held += local.numel() * local.element_size()
        full += p.numel() * p.element_size()
    return {"params_bytes": held, "full_bytes": full}
