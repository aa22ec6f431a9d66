"""Model shapes from a model's `config.json` alone: no weights, no torch, no transformers.

`model_shape(config)` turns a Hugging Face config into the numbers the memory estimate needs: how many parameters
sit in which part (quantizable linear layers, 16-bit embeddings/norms, MoE experts), and the sizes that drive
activations (hidden, heads, kv heads, intermediate, vocabulary). Each supported `model_type` names the linear
layers a decoder layer has, so LoRA "all-linear" counts exactly what PEFT would wrap.

`load_config(model)` finds that config.json: a path to the file, a model directory, the local Hugging Face cache,
or the Hub (config.json only, honouring HF_ENDPOINT and HF_TOKEN).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


class UnsupportedArchitecture(ValueError):
    """The config's model_type is not one the estimator knows; the message lists the supported ones."""


class ConfigNotFound(FileNotFoundError):
    """No config.json could be found or fetched for the given model; the message says where it looked and why.
    `kind` is "network" or "offline" when the Hub could not be asked (a screen then offers its own ways out)."""

    def __init__(self, message: str, kind: str = "not_found") -> None:
        super().__init__(message)
        self.kind = kind

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class Linear:
    """One linear layer inside a decoder layer (or one expert's): in and out features, how many per layer."""

    name: str
    d_in: int
    d_out: int
    count: int = 1  # e.g. number of experts holding this projection

    @property
    def params(self) -> int:
        return self.d_in * self.d_out * self.count


@dataclass
class ModelShape:
    model_type: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int  # dense MLP width (0 when every layer is MoE)
    vocab: int
    tied_embeddings: bool
    attn_linears: list[Linear] = field(default_factory=list)  # per layer, nn.Linear (quantized, LoRA targets)
    mlp_linears: list[Linear] = field(default_factory=list)  # per dense layer, nn.Linear
    dense_layers: int = 0  # layers with a dense MLP
    experts: int = 0  # routed experts per MoE layer (0: dense model)
    experts_per_token: int = 0
    expert_intermediate: int = 0
    expert_params_per_layer: int = 0  # routed experts' weights (stored as 3-D tensors in transformers 5)
    shared_expert_linears: list[Linear] = field(default_factory=list)  # nn.Linear in MoE layers (shared experts)
    router_params_per_layer: int = 0
    norms_per_layer: int = 2
    norm_params: int = 0  # all norm weights (incl. q/k norms and the final norm)
    final_logit_softcap: float | None = None
    attn_logit_softcap: float | None = None
    sliding_window: int | None = None

    @property
    def moe_layers(self) -> int:
        return self.layers - self.dense_layers if self.experts else 0

    @property
    def embed_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tied_embeddings else self.vocab * self.hidden

    @property
    def linear_params(self) -> int:
        """Parameters in nn.Linear layers of the decoder: what bitsandbytes quantizes."""
        per_attn = sum(l.params for l in self.attn_linears)
        per_mlp = sum(l.params for l in self.mlp_linears)
        per_shared = sum(l.params for l in self.shared_expert_linears)
        return self.layers * per_attn + self.dense_layers * per_mlp + self.moe_layers * per_shared

    @property
    def expert_params(self) -> int:
        return self.moe_layers * self.expert_params_per_layer

    @property
    def router_params(self) -> int:
        return self.moe_layers * self.router_params_per_layer

    @property
    def total_params(self) -> int:
        return (
            self.linear_params + self.expert_params + self.router_params + self.embed_params
            + self.lm_head_params + self.norm_params
        )

    def lora_linears(self, targets: list[str] | str) -> list[tuple[Linear, int]]:
        """(linear, number of layers holding it) for the LoRA targets: "all-linear" or module names."""
        out = []
        groups = [(self.attn_linears, self.layers), (self.mlp_linears, self.dense_layers),
                  (self.shared_expert_linears, self.moe_layers)]
        for linears, n_layers in groups:
            for lin in linears:
                if targets == "all-linear" or lin.name in targets:
                    out.append((lin, n_layers))
        return out

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if not isinstance(v, list)}
        d.update(total_params=self.total_params, linear_params=self.linear_params, expert_params=self.expert_params,
                 embed_params=self.embed_params, lm_head_params=self.lm_head_params)
        return d


# model_type -> family. Families share a layout; details come from the config.
_FAMILIES = {
    "llama": "llama", "mistral": "llama", "qwen2": "llama", "qwen3": "llama",
    "gemma": "gemma", "gemma2": "gemma", "gemma3_text": "gemma", "gemma3": "gemma",
    "phi3": "phi3",
    "mixtral": "moe", "qwen2_moe": "moe", "qwen3_moe": "moe",
}


def supported_model_type(model_type: str) -> bool:
    return model_type in _FAMILIES


def supported_model_types() -> list[str]:
    return sorted(_FAMILIES)


def _text_config(config: dict) -> dict:
    # Gemma 3 (multimodal) nests the language model's config under text_config.
    if config.get("model_type") == "gemma3" and isinstance(config.get("text_config"), dict):
        inner = dict(config["text_config"])
        inner.setdefault("model_type", "gemma3_text")
        inner.setdefault("tie_word_embeddings", config.get("tie_word_embeddings", True))
        return inner
    return config


def model_shape(config: dict) -> ModelShape:
    """The estimate's view of a model, from its config.json dict. Raises UnsupportedArchitecture / ValueError."""
    config = _text_config(config)
    mt = config.get("model_type")
    if not mt:
        raise UnsupportedArchitecture("config.json has no model_type; is this a model's config.json?")
    if mt not in _FAMILIES:
        raise UnsupportedArchitecture(
            f"model_type {mt!r} is not supported by the estimator; supported: {', '.join(supported_model_types())}"
        )
    family = _FAMILIES[mt]
    try:
        h = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        heads = int(config["num_attention_heads"])
        vocab = int(config["vocab_size"])
    except KeyError as e:
        raise ValueError(f"config.json for {mt} lacks {e.args[0]!r}; cannot estimate without it") from None
    kv = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or h // heads)
    inter = int(config.get("intermediate_size") or 0)
    default_tied = family == "gemma"
    tied = bool(config.get("tie_word_embeddings", default_tied))
    q_out, kv_out = heads * head_dim, kv * head_dim

    shape = ModelShape(model_type=mt, hidden=h, layers=layers, heads=heads, kv_heads=kv, head_dim=head_dim,
                       intermediate=inter, vocab=vocab, tied_embeddings=tied)
    if family == "phi3":
        shape.attn_linears = [Linear("qkv_proj", h, q_out + 2 * kv_out), Linear("o_proj", q_out, h)]
        shape.mlp_linears = [Linear("gate_up_proj", h, 2 * inter), Linear("down_proj", inter, h)]
    else:
        shape.attn_linears = [Linear("q_proj", h, q_out), Linear("k_proj", h, kv_out), Linear("v_proj", h, kv_out),
                              Linear("o_proj", q_out, h)]
        shape.mlp_linears = [Linear("gate_proj", h, inter), Linear("up_proj", h, inter), Linear("down_proj", inter, h)]
    shape.dense_layers = layers
    qk_norm_params = 0
    if mt in ("qwen3", "qwen3_moe", "gemma3_text", "gemma3"):
        qk_norm_params = 2 * head_dim  # q_norm and k_norm per layer
    if family == "gemma":
        shape.norms_per_layer = 4 if mt != "gemma" else 2
        shape.final_logit_softcap = config.get("final_logit_softcapping")
        shape.attn_logit_softcap = config.get("attn_logit_softcapping")
    shape.sliding_window = config.get("sliding_window")

    if family == "moe":
        experts = int(config.get("num_local_experts") or config.get("num_experts") or 0)
        if experts <= 0:
            raise ValueError(f"{mt} config has no num_local_experts/num_experts")
        e_inter = int(config.get("moe_intermediate_size") or inter)
        shape.experts = experts
        shape.experts_per_token = int(config.get("num_experts_per_tok") or 2)
        shape.expert_intermediate = e_inter
        shape.expert_params_per_layer = experts * 3 * h * e_inter
        shape.router_params_per_layer = experts * h
        shared = int(config.get("shared_expert_intermediate_size") or 0)
        if shared:
            shape.shared_expert_linears = [Linear("shared_expert.gate_proj", h, shared),
                                           Linear("shared_expert.up_proj", h, shared),
                                           Linear("shared_expert.down_proj", shared, h)]
            shape.router_params_per_layer += h  # shared_expert_gate
        # Qwen MoE: mlp_only_layers and decoder_sparse_step choose which layers are dense.
        mlp_only = set(config.get("mlp_only_layers") or [])
        step = int(config.get("decoder_sparse_step") or 1)
        dense = [i for i in range(layers) if i in mlp_only or not ((i + 1) % step == 0)]
        shape.dense_layers = len(dense) if mt != "mixtral" else 0
    shape.norm_params = layers * (shape.norms_per_layer * h + qk_norm_params) + h
    return shape


# ---------------------------------------------------------------------------------------------------------
def load_config(model: str) -> dict:
    """config.json as a dict, from: a file path, a model directory, the local HF cache, or the Hub.

    Only config.json is ever fetched. Raises ConfigNotFound with the reason (not found, gated, offline).
    """
    path = Path(model).expanduser()
    if path.is_file():
        return _read_json(path)
    if path.is_dir():
        cfg = path / "config.json"
        if cfg.is_file():
            return _read_json(cfg)
        raise ConfigNotFound(f"{path} is a directory without config.json; point --model at a model directory")
    if model.endswith(".json") or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ConfigNotFound(f"{model}: no such file or directory")
    return _hub_config(model)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigNotFound(f"{path}: not a readable JSON config ({e})") from None
    if not isinstance(data, dict):
        raise ConfigNotFound(f"{path}: expected a JSON object (a model's config.json)")
    return data


HUB_TIMEOUT_S = 5.0  # one look-up for config.json; an offline machine hears back in seconds, not minutes
MIRROR = "HF_ENDPOINT=https://hf-mirror.com"


def hub_endpoint() -> str:
    """HF_ENDPOINT (a mirror) when set, else huggingface.co; read at each call."""
    import os

    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").strip().rstrip("/")


def _hub_config(repo_id: str, timeout: float = HUB_TIMEOUT_S) -> dict:
    """config.json from huggingface_hub's cache, else one GET with `timeout` (no retries: huggingface_hub's own
    download retries a silent endpoint five times, minutes on an offline machine)."""
    import os

    from huggingface_hub import hf_hub_url, try_to_load_from_cache
    from huggingface_hub import errors as hf_errors
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    try:
        cached = try_to_load_from_cache(repo_id, "config.json")
    except hf_errors.HFValidationError:
        raise ConfigNotFound(
            f"{repo_id!r} is neither an existing path nor a valid Hub id (owner/name, e.g. Qwen/Qwen2.5-7B)"
        ) from None
    if isinstance(cached, str):
        return _read_json(Path(cached))
    ep = hub_endpoint()
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"):
        raise ConfigNotFound(f"{repo_id} is not in the local cache and HF_HUB_OFFLINE is set; pass a local model "
                             "folder or config.json path", kind="offline")
    try:
        r = get_session().get(hf_hub_url(repo_id, "config.json", endpoint=ep),
                              headers=build_hf_headers(library_name="tunedoc"), timeout=timeout)
        hf_raise_for_status(r)
        data = r.json()
    except hf_errors.GatedRepoError:
        raise ConfigNotFound(
            f"{repo_id} is gated: accept its licence on {ep}/{repo_id}, then `tunedoc login` "
            "(or set HF_TOKEN) and try again"
        ) from None
    except hf_errors.RepositoryNotFoundError:
        raise ConfigNotFound(
            f"{repo_id}: no such model on {ep} (or it is private: log in with `tunedoc login`); "
            "check the id, e.g. Qwen/Qwen2.5-7B"
        ) from None
    except (hf_errors.RemoteEntryNotFoundError, hf_errors.EntryNotFoundError):
        raise ConfigNotFound(f"{repo_id} has no config.json at its root; is it a GGUF-only or adapter repo?") from None
    except hf_errors.HFValidationError:
        raise ConfigNotFound(
            f"{repo_id!r} is neither an existing path nor a valid Hub id (owner/name, e.g. Qwen/Qwen2.5-7B)"
        ) from None
    except hf_errors.HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise ConfigNotFound(f"{ep} answered {status} for {repo_id}'s config.json; retry later, or use a mirror "
                             f"({MIRROR}) or a local model folder or config.json path", kind="network") from None
    except ValueError:
        raise ConfigNotFound(f"{ep} did not answer like a Hugging Face Hub (not JSON); check HF_ENDPOINT, or use "
                             f"a mirror ({MIRROR})", kind="network") from None
    except Exception as e:  # noqa: BLE001 - no route, DNS, refused, timed out, proxy
        raise ConfigNotFound(
            f"cannot reach {ep} within {timeout:g} s for {repo_id}'s config.json ({type(e).__name__}), and it "
            f"is not in the local cache; use a mirror ({MIRROR}), ModelScope, or a local model folder or "
            "config.json path", kind="network") from None
    if not isinstance(data, dict):
        raise ConfigNotFound(f"{ep}: {repo_id}'s config.json is not a JSON object")
    return data


# ---------------------------------------------------------------------------------------------------------
# Pre-quantized checkpoints: config.json's quantization_config (transformers' quantizers read the same keys:
# https://huggingface.co/docs/transformers/main/en/main_classes/quantization). The decoder's linear layers are
# stored quantized; embeddings, norms and lm_head stay 16-bit (modules_to_not_convert / llm_int8_skip_modules).


@dataclass
class Prequantized:
    """How a checkpoint's linear weights are stored, and whether tunedoc's trainer can train LoRA on them."""

    method: str  # gptq, awq, bitsandbytes, fp8, or another quant_method as written
    bits: float | None  # bits per stored weight (None: not known to the estimator)
    group_size: int | None = None  # weights per scale (GPTQ/AWQ groups, fp8 blocks); None: per output row
    quant: str | None = None  # bitsandbytes: the tunedoc quant it equals (nf4, nf4-dq, int8)
    trainable: bool = False
    why: str = ""  # why not, when not

    @property
    def text(self) -> str:
        if self.method == "fp8":
            return "FP8" + (f", one scale per {self.group_size} weights" if self.group_size else "")
        if self.method == "bitsandbytes":
            return f"bitsandbytes {'8-bit' if self.quant == 'int8' else '4-bit ' + (self.quant or '')}".strip()
        size = f", group size {self.group_size}" if self.group_size and self.group_size > 0 else ""
        bits = f" {self.bits:g}-bit" if self.bits else ""
        return f"{self.method.upper() if self.method in ('gptq', 'awq', 'fp8') else self.method}{bits}{size}"

    def constant_bytes(self, params: float) -> float:
        """Bytes of scales/zeros for `params` quantized weights."""
        if self.method in ("gptq", "awq"):
            g = self.group_size if self.group_size and self.group_size > 0 else 4096  # -1: one group per column
            return params / g * (2 + (self.bits or 4) / 8)  # an fp16 scale and a packed zero point per group
        if self.method == "fp8":
            g = self.group_size or 0
            return params / g * 4 if g else 0.0  # an fp32 scale per block (per-tensor scales are negligible)
        return 0.0


def prequantized(config: dict) -> Prequantized | None:
    """The checkpoint's quantization from config.json (None: 16/32-bit weights, which tunedoc quantizes itself)."""
    qc = config.get("quantization_config")
    if not isinstance(qc, dict) and isinstance(config.get("text_config"), dict):
        qc = config["text_config"].get("quantization_config")
    if not isinstance(qc, dict):
        return None
    method = str(qc.get("quant_method") or "").lower()
    kernels = ("tunedoc trains LoRA on 16-bit weights or on weights it quantizes itself with bitsandbytes, and has "
               "no {m} kernels; use the unquantized model with a qlora profile (4-bit, about the same memory)")
    if method in ("gptq", "awq"):
        bits = qc.get("bits", qc.get("w_bit", 4))
        group = qc.get("group_size", qc.get("q_group_size", 128))
        return Prequantized(method, float(bits), int(group) if group is not None else None,
                            why=kernels.format(m=method.upper()))
    if method == "bitsandbytes" or "load_in_4bit" in qc or "load_in_8bit" in qc:
        if qc.get("load_in_8bit") or qc.get("_load_in_8bit"):
            return Prequantized("bitsandbytes", 8.0, quant="int8", trainable=True)
        qtype = str(qc.get("bnb_4bit_quant_type") or "fp4")
        if qtype != "nf4":
            return Prequantized("bitsandbytes", 4.0, quant=qtype,
                                why=f"its 4-bit type is {qtype}; tunedoc's 4-bit is nf4")
        return Prequantized("bitsandbytes", 4.0, quant="nf4-dq" if qc.get("bnb_4bit_use_double_quant") else "nf4",
                            trainable=True)
    if method == "fp8":
        block = qc.get("weight_block_size")
        group = int(block[0]) * int(block[1]) if isinstance(block, (list, tuple)) and len(block) == 2 else None
        return Prequantized("fp8", 8.0, group, why=kernels.format(m="FP8"))
    return Prequantized(method or "unknown", None,
                        why=f"tunedoc does not know the {method or 'unnamed'} quantization's storage nor train on it; "
                            "use the unquantized model with a qlora profile")
