"""What the Profile screen calls: the GPU to fit on, a model's config.json, and the estimates. No Textual, no torch.

    backend = ProfileBackend()                                   # real: doctor probes, profiles.archs.load_config
    backend = ProfileBackend(probe=lambda: GpuProbe(None, "no NVIDIA GPU"), load_config=configs.__getitem__)

`probe_gpu` and `load_model` block (NVML, nvidia-smi, maybe the Hub): call them from a thread worker. The estimate
and the fit are arithmetic on config.json (about a millisecond per profile), so the screen calls them directly and
the numbers follow every key press.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from tunedoc.profiles.estimate import Estimate, estimate
from tunedoc.profiles.fit import Card, FitResult, default_margin, fit, ranked, smallest
from tunedoc.profiles.multi import choose_strategy
from tunedoc.profiles.profile import Profile, ProfileError, builtin_names, load_profile
from tunedoc.tui.backends import BackendError

GiB_PER_MiB = 1 / 1024


@dataclass
class GpuChoice:
    """The card the fit is for. `free_gb` is what the profiles must fit in (GiB)."""

    name: str | None  # None when the user typed a VRAM size
    free_gb: float
    total_gb: float | None = None
    source: str = "probe"  # probe | typed | lookup
    index: int | None = None  # nvidia-smi's number of a probed GPU

    def label(self) -> str:
        name = self.name or "a GPU"
        if self.source == "probe" and self.total_gb:
            return f"{name} · {self.free_gb:.1f} GiB free of {self.total_gb:.1f} GiB"
        if self.source == "lookup":
            return f"{name} · {self.free_gb:g} GiB (from the GPU table, not measured)"
        return f"{name} with {self.free_gb:g} GiB (typed)"


@dataclass
class GpuProbe:
    gpu: GpuChoice | None
    error: str | None = None  # why there is no GPU to fit on (the doctor's words)
    others: list[str] = field(default_factory=list)  # further GPUs, for the label ("+1 more")
    gpus: list[GpuChoice] = field(default_factory=list)  # every GPU of this machine, in nvidia-smi's order


def deciding(gpus: list[GpuChoice]) -> GpuChoice:
    """Of several GPUs training together, the one whose free memory decides the fit: the smallest."""
    cards = [Card(g.name, g.free_gb, i) for i, g in enumerate(gpus)]
    return gpus[smallest(cards).index]


@dataclass
class ModelConfig:
    model: str  # as the user gave it: path or Hub id
    config: dict
    model_type: str
    params: int | None = None


def probe_with_doctor() -> GpuProbe:
    """This machine's NVIDIA GPUs and their free memory, from the doctor's NVML probe (nvidia-smi if NVML
    fails). Never raises."""
    try:
        from tunedoc.doctor.facts import Facts
        from tunedoc.doctor.run import run_probe
    except ImportError as e:
        return GpuProbe(None, f"the doctor's GPU probes are not available ({e})")
    facts = Facts()
    for probe in ("nvml", "nvidia-smi"):
        run_probe(probe, facts)
        if facts.gpus:
            break
    return probe_from_facts(facts)


def probe_from_facts(facts) -> GpuProbe:
    """The GPUs the doctor's facts (probed, or read from a saved facts file) describe: the first for a one-GPU fit,
    all of them for the per-GPU fit."""
    gpus = [g for g in (facts.gpus or []) if g.memory_total_mb]
    if not gpus:
        why = facts.driver.nvml_error_text or facts.driver.nvidia_smi_error or "no NVIDIA GPU was found"
        return GpuProbe(None, why.splitlines()[0])
    choices = [GpuChoice(g.name, (g.memory_free_mb if g.memory_free_mb is not None else g.memory_total_mb)
                         * GiB_PER_MiB, g.memory_total_mb * GiB_PER_MiB, "probe",
                         g.index if g.index is not None else i) for i, g in enumerate(gpus)]
    return GpuProbe(choices[0], others=[x.name or "?" for x in gpus[1:]], gpus=choices)


def parse_gpu(text: str) -> GpuChoice:
    """"24", "24 GB", "11.5gib" -> that much VRAM; anything else is a GPU name looked up in the doctor's table.
    Raises BackendError naming what to type instead."""
    text = text.strip()
    if not text:
        raise BackendError("type a VRAM size in GiB (e.g. 24) or a GPU name (e.g. RTX 4090)")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(g|gb|gib)?", text, re.IGNORECASE)
    if m:
        gb = float(m.group(1))
        if not 0 < gb <= 1024:
            raise BackendError(f"{text}: give the GPU memory in GiB, between 1 and 1024")
        return GpuChoice(None, gb, gb, "typed")
    from tunedoc.doctor.knowledge import lookup_gpu

    info = lookup_gpu(text)
    if info is None:
        raise BackendError(f"no GPU named {text!r} in tunedoc's table; type its memory in GiB instead (e.g. 24)")
    return GpuChoice(info.name, float(info.vram_gb), float(info.vram_gb), "lookup")


def _load_config_real(model: str) -> dict:
    from tunedoc.profiles.archs import load_config

    return load_config(model)


def offline_text(model: str, kind: str = "network") -> str:
    """The Profile screen's message when the Hub cannot be asked: the endpoint, and the ways out (short enough
    for three lines at 80 columns)."""
    from tunedoc.profiles.archs import HUB_TIMEOUT_S, hub_endpoint

    why = "HF_HUB_OFFLINE is set" if kind == "offline" else f"no answer from {hub_endpoint()} in {HUB_TIMEOUT_S:g} s"
    return (f"{model}: not cached, {why}. Ways out: a mirror (HF_ENDPOINT=https://hf-mirror.com), m and a "
            "local folder or config.json, or g to type the GPU")


class ProfileBackend:
    def __init__(self, probe: Callable[[], GpuProbe] | None = None,
                 load_config: Callable[[str], dict] | None = None,
                 profiles: Callable[[], list[Profile]] | None = None) -> None:
        self._probe = probe or probe_with_doctor
        self._load_config = load_config or _load_config_real
        self._profiles = profiles or (lambda: [load_profile(n) for n in builtin_names()])

    def probe_gpu(self) -> GpuProbe:
        """Blocking (thread worker). Never raises."""
        try:
            return self._probe()
        except Exception as e:  # noqa: BLE001 - a probe bug must not take the screen down
            return GpuProbe(None, f"the GPU probe failed: {type(e).__name__}: {e}")

    def load_model(self, model: str) -> ModelConfig:
        """Blocking (thread worker): config.json of a path, a cached model or a Hub id. Raises BackendError."""
        from tunedoc.profiles.archs import ConfigNotFound, UnsupportedArchitecture, model_shape

        model = model.strip()
        if not model:
            raise BackendError("type a model: a local folder, a config.json, or a Hub id such as Qwen/Qwen2.5-7B")
        try:
            config = self._load_config(model)
            shape = model_shape(config)
        except ConfigNotFound as e:
            if getattr(e, "kind", None) in ("network", "offline"):
                raise BackendError(offline_text(model, e.kind)) from None
            raise BackendError(str(e)) from None
        except (UnsupportedArchitecture, FileNotFoundError) as e:
            raise BackendError(str(e)) from None
        except KeyError as e:
            raise BackendError(f"{model}: config.json lacks {e}; is it a causal language model?") from None
        return ModelConfig(model, config, str(config.get("model_type", "?")), shape.total_params)

    def profiles(self) -> list[Profile]:
        return self._profiles()

    @staticmethod
    def margin(gpu: GpuChoice) -> float:
        return default_margin(gpu.free_gb)

    @staticmethod
    def fit_one(config: dict, profile: Profile, gpu: GpuChoice | None, gpus: int = 1,
                strategy: str = "ddp") -> FitResult:
        """The estimate of `profile` as it is, whether it fits `gpu` with the margin, and the suggestion.
        Without a GPU: the estimate alone (fits=True, no headroom, no suggestion). `gpus` > 1: the per-GPU figure
        of training on that many GPUs, against `gpu` (the smallest of them)."""
        if gpu is None:
            return FitResult(profile, estimate(config, profile), True, 0.0, None)
        return fit(config, gpu.free_gb, profiles=[profile], gpu=gpu.name, gpus=gpus, strategy=strategy)[0]

    @staticmethod
    def rank(config: dict, profiles: list[Profile], gpu: GpuChoice, gpus: int = 1,
             strategy: str = "ddp") -> list[FitResult]:
        """`profiles` in the fit's order: those that fit first, most tokens per step first."""
        return fit(config, gpu.free_gb, profiles=profiles, gpu=gpu.name, gpus=gpus, strategy=strategy)

    @classmethod
    def fit_strategy(cls, config: dict, profile: Profile, gpu: GpuChoice | None, gpus: int,
                     requested: str = "auto") -> tuple[FitResult, str | None, str | None]:
        """(result, strategy, why): the fit of `profile` on `gpus` GPUs like `gpu` (the smallest of them) with the
        strategy `requested` (auto | ddp | fsdp) resolved as the trainer resolves it (profiles.multi.choose_strategy),
        auto judged against the budget the marks use (free memory less the margin). One GPU (or none): no strategy.
        int8 under fsdp: fit's verdict (not possible; its ddp figure and --set quant=nf4)."""
        if gpu is None or gpus <= 1:
            return cls.fit_one(config, profile, gpu), None, None
        one = estimate(config, profile, gpu=gpu.name)
        budget = gpu.free_gb - cls.margin(gpu)
        strategy, why = choose_strategy(requested, one, gpus, budget, "cuda", profile.quant)
        # choose_strategy speaks of "cards" of the size given: here that is the budget, not the card
        why = (why.replace(f"the {budget:.1f} GiB cards", f"the cards ({budget:.1f} GiB after the margin)")
               .replace(f"on {budget:.1f} GiB cards", f"on cards with {budget:.1f} GiB after the margin"))
        return cls.fit_one(config, profile, gpu, gpus, strategy), strategy, why

    @staticmethod
    def ranked(results: list[FitResult]) -> list[FitResult]:
        """Results judged under different strategies in the fit's order (profiles.fit.ranked)."""
        return ranked(results)

    @staticmethod
    def estimate(config: dict, profile: Profile, gpu: GpuChoice) -> Estimate:
        return estimate(config, profile, gpu=gpu.name)


def apply_sets(profile: Profile, sets: dict[str, object]) -> Profile:
    """`profile` with field overrides; raises BackendError listing every problem."""
    if not sets:
        return profile
    try:
        return Profile.from_dict({**profile.to_dict(), **sets})
    except ProfileError as e:
        raise BackendError("; ".join(e.problems)) from None


QUANT_WORDS = {
    "nf4-dq": "4-bit NF4 base with double-quantized constants: the smallest weights (QLoRA); a little slower than "
              "16-bit, quality close to 16-bit LoRA",
    "nf4": "4-bit NF4 base: small weights (QLoRA); a little slower than 16-bit, quality close to 16-bit LoRA",
    "int8": "8-bit base (LLM.int8): twice the weight memory of 4-bit, slower matmuls, slightly closer to 16-bit",
    "none": "16-bit base: the most weight memory, the fastest steps and the reference quality",
}
OPTIMIZER_WORDS = {
    "paged-adamw-8bit": "paged 8-bit AdamW: 2 bytes of state per trainable parameter, pages to CPU RAM under "
                        "pressure",
    "adamw-8bit": "8-bit AdamW: 2 bytes of state per trainable parameter",
    "adamw": "32-bit AdamW: 8 bytes of state per trainable parameter",
}


def tradeoffs(profile: Profile, est: Estimate) -> list[str]:
    """The profile's choices and what each costs or buys, in words, with this model's numbers."""
    b, d = est.breakdown, est.details
    weights = b.get('quantized_weights', 0) + b.get('weights_16bit', 0)
    shards = int(d.get("gpus") or 1) if d.get("strategy") == "fsdp" else 1  # fsdp: the breakdown is one GPU's share
    lines = [QUANT_WORDS.get(profile.quant, f"base weights: {profile.quant}")
             + (f" ({weights * shards:.1f} GiB here, {weights:.1f} on each of {shards} GPUs)." if shards > 1
                else f" ({weights:.1f} GiB here).")]
    lora = d.get("lora_params")
    targets = profile.lora_targets if isinstance(profile.lora_targets, str) else ", ".join(profile.lora_targets)
    lines.append(f"LoRA rank {profile.lora_r} on {targets}"
                 + (f": {lora / 1e6:.1f} M trainable parameters" if lora else "")
                 + "; a higher rank learns more and costs adapter, gradient and optimizer memory.")
    tokens = profile.cutoff_len * profile.micro_batch
    lines.append(f"{profile.cutoff_len} tokens per sample x micro-batch {profile.micro_batch} = {tokens} tokens per "
                 f"step (effective batch {profile.effective_batch} with accumulation {profile.grad_accum}); "
                 + (f"longer samples are cut. Activations and the logits ({b.get('activations', 0):.1f} + "
                    f"{b['logits_loss']:.1f} GiB) grow with the tokens per step." if "logits_loss" in b else
                    f"longer samples are cut. Activations ({b.get('activations', 0):.1f} GiB) grow with the tokens "
                    "per step."))
    lines.append({"on": "Gradient checkpointing on: activations recomputed in the backward pass, about 30 % more "
                        "compute.",
                  "offload": "Gradient checkpointing with offload: activations recomputed in the backward pass and "
                             "the layer inputs kept in CPU RAM, about 30 % more compute plus ~15 % for the copies.",
                  }.get(profile.grad_ckpt,
                        "Gradient checkpointing off: faster steps, but every layer's activations stay in memory."))
    lines.append("Loss in full fp32 logits (loss_impl=plain): tokens x vocabulary x 12 bytes at the loss."
                 if profile.loss_impl == "plain" else
                 f"Loss {profile.loss_impl}: the logits are computed a chunk at a time, never all at once.")
    lines.append(OPTIMIZER_WORDS.get(profile.optimizer, profile.optimizer) + ".")
    if profile.packing:
        lines.append("Packing on: samples are joined into full rows, no padding wasted.")
    return lines


__all__ = ["tradeoffs", "BackendError", "GpuChoice", "GpuProbe", "ModelConfig", "ProfileBackend", "apply_sets", "parse_gpu",
           "probe_with_doctor", "probe_from_facts", "deciding"]
