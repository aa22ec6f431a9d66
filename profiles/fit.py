"""Which profiles fit a GPU: rank those that fit with a safety margin, and say how to make the others fit.

`fit(config, vram_gb)` estimates every built-in profile (or the ones given), keeps a margin for the desktop,
other processes and estimate error, and ranks what fits by tokens per step (cutoff x micro-batch), then base
precision, then rank. For a profile that fits with room to spare it names the bigger micro-batch that still fits;
for one that does not, it applies memory savers one after another (smaller micro-batch with more accumulation so
the effective batch stays, checkpointing, 8-bit paged optimizer, shorter cutoff, lower-bit base) and reports the
first set of `--set` changes that fits, and by how much.

Several GPUs (`fit(..., gpus=N, strategy="ddp")`): every profile is judged by its per-GPU figure
(profiles.multi.per_gpu) against one card's free memory. With cards of different sizes the smallest decides
(`smallest(cards)`): every rank holds the same replicated state and its own micro-batch, so the card with the least
free memory is where the run would run out first. `parts(est)` splits a per-GPU figure into what is replicated on
every GPU, what each rank holds for its own micro-batch, and the communication buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunedoc.profiles.estimate import Estimate, estimate
from tunedoc.profiles.multi import MODEL_STATE, SHARDED, per_gpu
from tunedoc.profiles.profile import Profile, builtin_names, load_profile

QUALITY = {"none": 3, "int8": 2, "nf4-dq": 1, "nf4": 1}
MIN_CUTOFF = 256
UNDO_ORDER = ["quant", "cutoff_len", "micro_batch", "lora_dropout", "optimizer", "grad_ckpt", "loss_impl"]
# what each memory saver costs, in the words of a suggestion; speed figures are rules of thumb (checkpointing
# recomputes the forward: ~30 %; offload adds PCIe copies of every layer input both ways: ~15 %; the chunked loss
# does the same matmuls as the plain one, a chunk at a time)
SAVER_WORDS = {
    ("grad_ckpt", "on"): "turn on gradient checkpointing (about 30 % slower)",
    ("grad_ckpt", "offload"): "turn on activation offload (about 15 % slower, uses CPU RAM)",
    ("loss_impl", "chunked"): "use the chunked loss (no slower)",
    ("optimizer", "paged-adamw-8bit"): "use the paged 8-bit optimizer",
    ("lora_dropout", 0.0): "drop LoRA dropout",
}


# the per-GPU figure in shares (see parts()); every breakdown key not in MODEL_STATE or these is the rank's own
COMMUNICATION = ("ddp_buckets", "nccl_buffers", "fsdp_gather")


@dataclass
class Card:
    """One GPU to fit on: its name (None for a typed size), free GiB, and index as nvidia-smi numbers it."""

    name: str | None
    free_gb: float
    index: int | None = None

    def label(self) -> str:
        where = f"GPU {self.index} " if self.index is not None else ""
        return f"{where}{self.name or 'a GPU'} ({self.free_gb:.1f} GiB)"

    def to_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "free_gb": round(self.free_gb, 3)}


def smallest(cards: list[Card]) -> Card:
    """The card that decides a multi-GPU fit: the least free memory (the first of equals)."""
    if not cards:
        raise ValueError("no GPU to fit on")
    return min(cards, key=lambda c: c.free_gb)


def parts(est: Estimate) -> dict[str, float]:
    """The per-GPU figure in shares: "replicated" (every GPU holds it: weights, adapter, its gradients and optimizer
    states), "per_rank" (each rank's own micro-batch: activations, logits; its CUDA context and allocator slack),
    "communication" (DDP's gradient buckets, FSDP's all-gather buffers, NCCL's buffers); under fsdp also "sharded"
    (profiles.multi.SHARDED: what each GPU holds 1/N of)."""
    out = {"replicated": 0.0, "sharded": 0.0, "per_rank": 0.0, "communication": 0.0}
    sharded = SHARDED if est.details.get("strategy") == "fsdp" else ()
    for k, v in est.breakdown.items():
        if k in COMMUNICATION:
            out["communication"] += v
        elif k in sharded:
            out["sharded"] += v
        elif k in MODEL_STATE:
            out["replicated"] += v
        else:
            out["per_rank"] += v
    if not out["sharded"]:
        del out["sharded"]
    return out


def default_margin(vram_gb: float) -> float:
    """Safety margin: 5 % of the card, at least 0.5 GiB."""
    return max(0.5, 0.05 * vram_gb)


@dataclass
class FitResult:
    profile: Profile
    estimate: Estimate
    fits: bool
    headroom_gb: float  # budget (vram - margin) minus the estimate; negative: by how much it does not fit
    suggestion: str | None
    changes: dict = field(default_factory=dict)  # the field changes the suggestion makes (for --set / a screen)

    def to_dict(self) -> dict:
        return {"profile": self.profile.name, "fits": self.fits, "headroom_gb": round(self.headroom_gb, 3),
                "total_gb": round(self.estimate.total_gb, 3), "suggestion": self.suggestion, "changes": self.changes,
                "cutoff_len": self.profile.cutoff_len, "micro_batch": self.profile.micro_batch,
                "quant": self.profile.quant, "estimate": self.estimate.to_dict()}


def set_args(changes: dict) -> str:
    return " ".join(f"--set {k}={_fmt(v)}" for k, v in changes.items())


def _fmt(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def fit(config: dict, vram_gb: float, seq: int | None = None, margin_gb: float | None = None,
        profiles: list[Profile] | None = None, gpu: str | None = None, attn: str = "sdpa",
        gpus: int = 1, strategy: str = "ddp") -> list[FitResult]:
    """Rank `profiles` (default: the built-ins) for a card with `vram_gb` GiB free. `seq` overrides cutoff_len.
    `gpus` > 1: each profile's per-GPU figure when training on that many GPUs with `strategy`, against `vram_gb`
    (the smallest card's free memory)."""
    if vram_gb <= 0:
        raise ValueError(f"vram_gb={vram_gb}: must be positive (GiB)")
    margin = default_margin(vram_gb) if margin_gb is None else margin_gb
    budget = vram_gb - margin
    profiles = profiles if profiles is not None else [load_profile(n) for n in builtin_names()]

    def run(p: Profile) -> Estimate:
        return per_gpu(estimate(config, p, gpu=gpu, attn=attn), gpus, strategy)

    results = []
    for prof in profiles:
        if seq:
            prof = _with(prof, cutoff_len=int(seq))
        if gpus > 1 and strategy == "fsdp" and prof.quant == "int8":  # trainer/fsdp.py refuses it: ddp's figure
            est = per_gpu(estimate(config, prof, gpu=gpu, attn=attn), gpus, "ddp")
            results.append(FitResult(prof, est, False, budget - est.total_gb, "int8 weights cannot be sharded: "
                                     "this is its ddp figure (--strategy ddp); --set quant=nf4 shards it",
                                     {"quant": "nf4"}))
            continue
        est = run(prof)
        headroom = budget - est.total_gb
        if headroom >= 0:
            changes, spare = _grow(prof, budget, run)
            suggestion = (f"room for {set_args(changes)} ({spare:.1f} GiB to spare)" if changes else None)
            results.append(FitResult(prof, est, True, headroom, suggestion, changes))
        else:
            changes, spare = _shrink(prof, budget, run, keep_cutoff=False)
            if changes is not None:
                words = describe(changes)
                suggestion = (f"{words}: " if words else "") + f"{set_args(changes)} fits with {spare:.1f} GiB to spare"
            else:
                suggestion = (f"does not fit even with every memory saver: needs {-spare:.1f} GiB more; "
                              "use a smaller model or a bigger GPU")
                changes = {}
            results.append(FitResult(prof, est, False, headroom, suggestion, changes))

    return ranked(results)


def ranked(results: list[FitResult]) -> list[FitResult]:
    """The fit's order: those that fit first, most tokens per step, then base precision, then rank; then those that
    do not, the closest first (for results judged under different strategies, e.g. the Profile screen's auto)."""

    def key(r: FitResult):
        p = r.profile
        if r.fits:
            return (0, -(p.cutoff_len * p.micro_batch), -QUALITY.get(p.quant, 0), -p.lora_r, p.name)
        return (1, -r.headroom_gb, 0, 0, p.name)

    return sorted(results, key=key)


def describe(changes: dict) -> str:
    """The changes in words with their cost ("turn on activation offload (about 15 % slower, uses CPU RAM)"),
    for the savers that have words; sizes (micro-batch, cutoff, quant) speak for themselves in --set form."""
    out = [SAVER_WORDS[(k, v)] for k, v in changes.items() if (k, v) in SAVER_WORDS]
    if "cutoff_len" in changes:
        out.append(f"cut samples to {changes['cutoff_len']} tokens")
    return ", ".join(out)


def _with(p: Profile, **changes) -> Profile:
    return Profile.from_dict({**p.to_dict(), **changes})


def _grow(p: Profile, budget: float, run) -> tuple[dict, float]:
    """The largest micro-batch (doubling, effective batch kept where accumulation allows) that still fits."""
    best: dict = {}
    spare = 0.0
    mb, ga = p.micro_batch, p.grad_accum
    for _ in range(5):
        mb, ga = mb * 2, max(1, ga // 2)
        trial = _with(p, micro_batch=mb, grad_accum=ga)
        total = run(trial).total_gb
        if total > budget:
            break
        best, spare = {"micro_batch": mb, "grad_accum": ga}, budget - total
    return best, spare


def _shrink(p: Profile, budget: float, run, keep_cutoff: bool) -> tuple[dict | None, float]:
    """Apply memory savers cumulatively; the first set that fits, or (None, shortfall of the last)."""
    steps: list[dict] = []
    mb, ga = p.micro_batch, p.grad_accum
    while mb > 1:
        mb, ga = mb // 2, ga * 2
        steps.append({"micro_batch": mb, "grad_accum": ga})
    # the loss and offload before anything that changes what is trained (optimizer, cutoff, base precision)
    if p.loss_impl == "plain":
        steps.append({"loss_impl": "chunked"})
    if p.grad_ckpt == "off":
        steps.append({"grad_ckpt": "on"})
    if p.grad_ckpt != "offload":
        steps.append({"grad_ckpt": "offload"})
    if p.optimizer == "adamw":
        steps.append({"optimizer": "paged-adamw-8bit"})
    if p.lora_dropout > 0:
        steps.append({"lora_dropout": 0.0})
    cut = p.cutoff_len
    while not keep_cutoff and cut // 2 >= MIN_CUTOFF:
        cut //= 2
        steps.append({"cutoff_len": cut})
    for q in ("int8", "nf4-dq"):
        if QUALITY[q] < QUALITY.get(p.quant, 0):
            steps.append({"quant": q})
    changes: dict = {}
    total = run(p).total_gb
    for step in steps:
        changes.update(step)
        total = run(_with(p, **changes)).total_gb
        if total <= budget:
            return _minimal(p, changes, budget, run)
    return None, budget - total


def _minimal(p: Profile, changes: dict, budget: float, run) -> tuple[dict, float]:
    """Drop changes that are not needed (e.g. a shorter cutoff when the lower-bit base alone fits)."""
    keep = dict(changes)
    # try to undo the changes that cost the most quality first
    for k in sorted(changes, key=lambda k: UNDO_ORDER.index(k) if k in UNDO_ORDER else len(UNDO_ORDER)):
        if k == "grad_accum" or k not in keep:
            continue
        trial = {kk: vv for kk, vv in keep.items() if kk != k}
        if k == "micro_batch":
            trial.pop("grad_accum", None)
        if run(_with(p, **trial)).total_gb <= budget:
            keep = trial
        elif k == "grad_ckpt" and keep[k] == "offload" and p.grad_ckpt == "off":
            trial = {**keep, "grad_ckpt": "on"}  # checkpointing without the offload may be enough
            if run(_with(p, **trial)).total_gb <= budget:
                keep = trial
    return keep, budget - run(_with(p, **keep)).total_gb
