"""`tunedoc profiles`, `tunedoc estimate` and `tunedoc fit`: stdout for data, stderr for diagnostics."""

from __future__ import annotations

import argparse
import json
import sys

from tunedoc.profiles.profile import BUILTIN_DIR, ProfileError, builtin_names, load_profile

# one glyph per breakdown part: the stacked bar and the table's legend use the same
GLYPHS = {"quantized_weights": "█", "quant_constants": "▇", "weights_16bit": "▓", "lora_params": "▒",
          "lora_grads": "░", "optimizer_states": "#", "activations": "=", "logits_loss": "L",
          "layer_backward": "B", "allocator_overhead": ":", "cuda_context": ".", "correction": "+",
          "ddp_buckets": "D", "nccl_buffers": "N", "fsdp_gather": "G"}
BAR_WIDTH = 60


def _err(msg: str) -> int:
    print(f"tunedoc: {msg}", file=sys.stderr)
    return 2


# --- profiles ---------------------------------------------------------------------------------------------
def profiles_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the profiles as JSON")


def profiles_main(args) -> int:
    profs = [load_profile(n) for n in builtin_names()]
    if args.json:
        print(json.dumps([p.to_dict() for p in profs], indent=2))
        return 0
    print(f"{'name':<16} {'quant':<7} {'r':>3} {'cutoff':>6} {'batch':>5} {'accum':>5} {'ckpt':<7} {'loss':<7} {'optimizer':<17} description")
    for p in profs:
        print(f"{p.name:<16} {p.quant:<7} {p.lora_r:>3} {p.cutoff_len:>6} {p.micro_batch:>5} {p.grad_accum:>5} "
              f"{p.grad_ckpt:<7} {p.loss_impl:<7} {p.optimizer:<17} {p.description}")
    print("\nCopy one to edit it: the files are in " + str(BUILTIN_DIR), file=sys.stderr)
    return 0


# --- shared -----------------------------------------------------------------------------------------------
def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH_OR_HUB_ID",
                        help="config.json, a model directory, or a Hub id (only config.json is fetched)")
    parser.add_argument("--config", metavar="FILE.yaml",
                        help="a LLaMA-Factory SFT config: its model and settings (model_name_or_path only needs "
                             "config.json); --model and --set override")
    parser.add_argument("--seq", type=int, metavar="N", help="tokens per sample (overrides the profile's cutoff_len)")
    parser.add_argument("--attn", choices=("sdpa", "flash", "eager"), default="sdpa",
                        help="attention implementation (eager adds a seq^2 term)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _llamafactory(args):
    """(model, Profile, None) from --config (a LLaMA-Factory YAML) and --set, or (None, None, error). The keys it
    does not use go to stderr by name."""
    from tunedoc.trainer.datacheck import split_identity_sets
    from tunedoc.trainer.llamafactory import ConfigError, read_config

    try:
        imp = read_config(args.config)
    except (ConfigError, FileNotFoundError) as e:
        return None, None, str(e)
    if imp.ignored or imp.unknown:
        print(f"{args.config}: not used (`tunedoc train --config --dry-run` says why): "
              f"{', '.join([*imp.ignored, *(f'{k} (unknown)' for k in imp.unknown)])}", file=sys.stderr)
    if imp.template:
        print(f"{args.config}: template: {imp.template}: "
              + (imp.template_error or "no memory effect; `tunedoc train` checks it is the model's own chat template"),
              file=sys.stderr)
    if imp.errors:
        return None, None, f"{args.config}: tunedoc cannot train this:\n" + "\n".join(f"  - {e}" for e in imp.errors)
    try:
        profile = imp.profile(split_identity_sets(getattr(args, "sets", []) or [])[1])
    except ProfileError as e:
        return None, None, str(e)
    model = args.model or imp.model
    if not model:
        return None, None, f"{args.config}: no model_name_or_path; pass --model"
    return model, profile, None


def _yaml_changes(config_path: str, changes: dict) -> str:
    """fit's changes as the LLaMA-Factory keys to paste into the config."""
    from tunedoc.trainer.llamafactory import yaml_keys

    keys = yaml_keys(changes)
    lines = [f"  in {config_path}:"]
    for k, v in keys.items():
        if k.startswith("#"):
            lines.append(f"    {k}: {v}  (no LLaMA-Factory key; tunedoc only)" if v is not None else
                         f"    {k} (no LLaMA-Factory key; tunedoc only)")
        else:
            lines.append(f"    {k}: {'null' if v is None else str(v).lower() if isinstance(v, bool) else v}")
    return "\n".join(lines)


def _untrainable(model: str, est) -> None:
    """One sentence on stderr when tunedoc's trainer cannot train this pre-quantized checkpoint."""
    pq = est.details.get("prequantized")
    if pq and not pq["trainable"]:
        print(f"note: `tunedoc train` cannot train {model}, a pre-quantized {pq['text']} checkpoint: {pq['why']}",
              file=sys.stderr)


def _load_config(model: str):
    from tunedoc.profiles.archs import ConfigNotFound, load_config

    try:
        return load_config(model), None
    except ConfigNotFound as e:
        return None, str(e)


def _lookup_gpu(name: str):
    """(GpuInfo, None) or (None, error message)."""
    try:
        from tunedoc.doctor.knowledge import lookup_gpu
    except ImportError:
        return None, (f"--gpu {name!r}: the GPU table (doctor.knowledge) is not available in this install; "
                      "pass --vram GB instead")
    info = lookup_gpu(name)
    if info is None:
        return None, f"--gpu {name!r}: unknown GPU name; try the marketing name (e.g. 'RTX 4090', 'A100 80GB') or pass --vram GB"
    return info, None


# --- estimate ---------------------------------------------------------------------------------------------
def estimate_args(parser: argparse.ArgumentParser) -> None:
    _model_args(parser)
    parser.add_argument("--profile", default=None, metavar="NAME_OR_TOML",
                        help=f"a built-in profile ({', '.join(builtin_names())}) or a TOML file (default: "
                             "qlora-balanced)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                        help="change one profile field, e.g. --set cutoff_len=2048 (repeatable)")
    parser.add_argument("--gpu", metavar="NAME", help="the card: compares with its memory and applies corrections "
                        "recorded from earlier runs on it")
    parser.add_argument("--gpus", type=int, default=1, metavar="N",
                        help="training on N GPUs (tunedoc train --gpus): the figure per GPU")
    parser.add_argument("--strategy", default=None, choices=["auto", "ddp", "fsdp"],
                        help="how the GPUs share the model (default: the profile's strategy, auto): ddp (each holds "
                        "all of it), fsdp (sharded 1/N, plus the all-gather buffers); auto: ddp when it fits --gpu "
                        "whole, fsdp when only the shards fit (ddp without --gpu)")


def estimate_main(args) -> int:
    from tunedoc.profiles.archs import UnsupportedArchitecture
    from tunedoc.profiles.estimate import estimate
    from tunedoc.profiles.multi import per_gpu

    if args.config:
        if args.profile:
            return _err("--profile and --config both give the profile: use one (--set still overrides)")
        args.model, profile, err = _llamafactory(args)
        if err:
            return _err(err)
    else:
        if not args.model:
            return _err("--model (or --config FILE.yaml) is required")
        try:
            profile = load_profile(args.profile or "qlora-balanced").with_overrides(args.sets)
        except (ProfileError, FileNotFoundError) as e:
            return _err(str(e))
    config, err = _load_config(args.model)
    if err:
        return _err(err)
    gpu_info = None
    if args.gpu:
        gpu_info, err = _lookup_gpu(args.gpu)
        if err:
            return _err(err)
    try:
        est = estimate(config, profile, gpu=gpu_info.name if gpu_info else None, seq=args.seq, attn=args.attn)
        if args.gpus < 1:
            raise ValueError(f"--gpus {args.gpus}: at least 1")
        from tunedoc.profiles.multi import choose_strategy

        args.strategy, why = choose_strategy(args.strategy or profile.strategy, est, args.gpus,
                                           gpu_info.vram_gb if gpu_info else None, quant=profile.quant)
        if args.gpus > 1 and args.strategy == "fsdp":  # a figure for a run the trainer refuses would mislead
            from tunedoc.trainer.fsdp import check_quant

            check_quant(profile.quant)
        est = per_gpu(est, args.gpus, args.strategy)
        if args.gpus > 1:  # why this strategy (auto's choice and its reason, or "as asked")
            est.assumptions.insert(0, why)
    except (UnsupportedArchitecture, ValueError) as e:
        return _err(str(e))
    _untrainable(args.model, est)
    if args.json:
        out = est.to_dict()
        if gpu_info:
            out["gpu"] = {"name": gpu_info.name, "vram_gb": gpu_info.vram_gb,
                          "fits": est.total_gb <= gpu_info.vram_gb}
        print(json.dumps(out, indent=2))
        return 0
    d = est.details
    print(f"{args.model}: {d['model_type']}, {d['params'] / 1e9:.2f} B params; profile {profile.name}; "
          f"{d['seq']} tokens x {d['micro_batch']}; attention {d['attn']}"
          + (f"; per GPU of {args.gpus} ({args.strategy})" if args.gpus > 1 else ""))
    print(render_breakdown(est))
    if gpu_info:
        spare = gpu_info.vram_gb - est.total_gb
        verdict = f"fits with {spare:.1f} GiB to spare" if spare >= 0 else f"does not fit: {-spare:.1f} GiB short"
        print(f"{gpu_info.name} ({gpu_info.vram_gb:g} GiB): {verdict}")
        if spare < 0 and args.config:
            print(f"what would make it fit: tunedoc fit --config {args.config} --gpu \"{gpu_info.name}\"")
    print("assumptions:")
    for a in est.assumptions:
        print(f"  - {a}")
    return 0


def render_breakdown(est) -> str:
    """The breakdown as a table with a glyph legend, and one stacked bar."""
    from tunedoc.profiles.estimate import BREAKDOWN_LABELS
    from tunedoc.profiles.multi import LABELS, MODEL_STATE, PER_RANK, SHARDED

    lines = []
    parts = [(k, v) for k, v in est.breakdown.items() if v > 0.0005]
    n = est.details.get("gpus") if est.details.get("per_gpu") else None
    labels = {}
    for k, _ in parts:
        label = BREAKDOWN_LABELS.get(k, LABELS.get(k, k))
        if n and k in PER_RANK:  # each rank's own micro-batch: not a copy of anything
            label += ", per rank"
        elif n and est.details.get("strategy") == "fsdp" and k in SHARDED:
            label += f", sharded 1/{n}"
        elif n and k in MODEL_STATE:  # what every GPU holds whole
            label += ", replicated"
        labels[k] = label
    width = max([38, *map(len, labels.values())])
    for k, v in parts:
        lines.append(f"  {GLYPHS.get(k, '?')} {labels[k]:<{width}} {v:8.2f} {est.unit}")
    lines.append(f"    {'total (peak reserved + CUDA context)':<{width}} {est.total_gb:8.2f} {est.unit}")
    bar = ""
    acc = 0.0
    for k, v in parts:  # cumulative rounding keeps the bar exactly BAR_WIDTH wide
        start = round(acc / est.total_gb * BAR_WIDTH)
        acc += v
        bar += GLYPHS.get(k, "?") * (round(acc / est.total_gb * BAR_WIDTH) - start)
    lines.append(f"  [{bar}]")
    if est.correction:
        lines.append(f"  {est.correction['text']}")
    return "\n".join(lines)


# --- fit --------------------------------------------------------------------------------------------------
def fit_args(parser: argparse.ArgumentParser) -> None:
    _model_args(parser)
    card = parser.add_mutually_exclusive_group()
    card.add_argument("--gpu", metavar="NAME", action="append",
                      help="a GPU by name, e.g. 'RTX 4090'; repeat it for a box of mixed cards "
                           "(--gpu 'RTX 3090' --gpu 'RTX 3060'): the smallest decides")
    card.add_argument("--vram", type=float, metavar="GB", help="free GPU memory in GB (GPU sizes are binary: 24 = 24 GiB)")
    parser.add_argument("--margin", type=float, metavar="GB", help="safety margin (default: 5 %% of the card, >= 0.5)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                        help="with --config: change one field of the config's profile (repeatable)")
    parser.add_argument("--gpus", metavar="all|N|0,2",
                        help="training on several GPUs (as tunedoc train --gpus): the fit per GPU. On this machine "
                             "(no --gpu/--vram) the default is every GPU, as train's; with one --gpu or --vram, N "
                             "cards of that size; with several --gpu, which of them")
    parser.add_argument("--strategy", default="ddp", metavar="ddp|fsdp",
                        help="how the GPUs share the model: ddp (each GPU holds all of it; the default), fsdp "
                        "(sharded 1/N, plus the all-gather buffers; int8 profiles cannot be sharded)")


def _probed_gpus() -> tuple[list, str | None]:
    """(this machine's GPUs as profiles.fit.Card, in nvidia-smi's order, with their free GiB; error) from the
    doctor's probes."""
    from tunedoc.profiles.fit import Card

    try:
        from tunedoc.doctor.facts import Facts
        from tunedoc.doctor.run import run_probe
    except ImportError:
        return [], "the doctor's GPU probes are not available; pass --gpu NAME or --vram GB"
    facts = Facts()
    for probe in ("nvml", "nvidia-smi"):
        try:
            run_probe(probe, facts)
        except Exception as e:  # a probe should never raise; if one does, say so and go on
            print(f"tunedoc: probe {probe} failed: {e}", file=sys.stderr)
        if facts.gpus:
            break
    gpus = [g for g in (facts.gpus or []) if g.memory_total_mb]
    if not gpus:
        why = facts.driver.nvml_error_text or facts.driver.nvidia_smi_error or "no NVIDIA GPU was found"
        return [], f"no GPU to fit on this machine ({why}); pass --gpu NAME or --vram GB"
    return [Card(g.name, (g.memory_free_mb if g.memory_free_mb is not None else g.memory_total_mb) / 1024,
                 g.index if g.index is not None else i) for i, g in enumerate(gpus)], None


def _probed_gpu() -> tuple[str | None, float | None, str | None]:
    """(name, free GiB, error) of this machine's first GPU."""
    cards, err = _probed_gpus()
    if err:
        return None, None, err
    return cards[0].name, cards[0].free_gb, None


def _fit_cards(args) -> tuple[list, str, str | None]:
    """The cards a fit is for (--vram, --gpu, or this machine's), chosen by --gpus; the header's words; error."""
    from tunedoc.profiles.fit import Card
    from tunedoc.trainer.distributed import parse_gpus

    spec = (args.gpus or "").strip() or None
    if args.vram is not None or (args.gpu and len(args.gpu) == 1):
        if spec is not None and not spec.isdigit():
            return [], "", (f"--gpus {spec}: with {'--vram' if args.vram is not None else 'one --gpu'} give a "
                            "count of such cards (--gpus 2); indices pick among this machine's or several --gpu")
        n = int(spec) if spec else 1
        if n < 1:
            return [], "", f"--gpus {n}: at least 1"
        if args.vram is not None:
            if args.vram <= 0:
                return [], "", f"--vram {args.vram:g}: must be a positive number of GB"
            return [Card(None, args.vram)] * n, f"{args.vram:g} GiB", None
        info, err = _lookup_gpu(args.gpu[0])
        if err:
            return [], "", err
        return [Card(info.name, float(info.vram_gb))] * n, f"{info.name} ({info.vram_gb:g} GiB)", None
    if args.gpu:
        cards = []
        for i, name in enumerate(args.gpu):
            info, err = _lookup_gpu(name)
            if err:
                return [], "", err
            cards.append(Card(info.name, float(info.vram_gb), i))
        what = "the --gpu cards"
    else:
        cards, err = _probed_gpus()
        if err:
            return [], "", err
        what = "this machine's GPUs"
    try:
        ids = parse_gpus(spec, len(cards))
    except ValueError as e:
        return [], "", f"{e} ({what}: {', '.join(c.label() for c in cards)})"
    chosen = [cards[i] for i in ids]
    if not args.gpu and spec is None and len(cards) > 1:
        print(f"all {len(cards)} GPUs of this machine, as `tunedoc train` uses by default (--gpus 1 for one)",
              file=sys.stderr)
    if len(chosen) == 1:
        c = chosen[0]
        return chosen, (f"{c.name} ({c.free_gb:.1f} GiB free)" if not args.gpu else
                        f"{c.name} ({c.free_gb:g} GiB)"), None
    return chosen, "", None


def fit_main(args) -> int:
    from tunedoc.profiles.archs import UnsupportedArchitecture
    from tunedoc.profiles.fit import default_margin, fit, parts, smallest

    profiles = None
    if args.config:
        args.model, profile, err = _llamafactory(args)
        if err:
            return _err(err)
        profiles = [profile]
    elif not args.model:
        return _err("--model (or --config FILE.yaml) is required")
    config, err = _load_config(args.model)
    if err:
        return _err(err)
    cards, where, err = _fit_cards(args)
    if err:
        return _err(err)
    decides = smallest(cards)
    n = len(cards)
    vram, gpu_name = decides.free_gb, decides.name
    if n > 1:
        mixed = len({c.free_gb for c in cards}) > 1
        listed = (", ".join(c.label() for c in cards) if mixed or decides.index is not None
                  else f"{n} x {decides.label()}")
        where = (f"{n} GPUs ({args.strategy}), per GPU: {listed}"
                 + (f"; the smallest decides: {decides.label()}" if mixed else ""))
    try:
        results = fit(config, vram, seq=args.seq, margin_gb=args.margin, gpu=gpu_name, attn=args.attn,
                      profiles=profiles, gpus=n, strategy=args.strategy)
    except (UnsupportedArchitecture, ValueError) as e:
        return _err(str(e))
    if results:
        _untrainable(args.model, results[0].estimate)
    if args.json:
        out = {"vram_gb": vram, "gpu": gpu_name, "gpus": n, "strategy": args.strategy if n > 1 else None,
               "cards": [c.to_dict() for c in cards], "decides": decides.to_dict(),
               "results": [{**r.to_dict(), **({"per_gpu": {k: round(v, 3) for k, v in parts(r.estimate).items()}}
                                               if n > 1 else {})} for r in results]}
        if args.config:
            from tunedoc.trainer.llamafactory import yaml_keys

            out["config"] = args.config
            out["yaml_changes"] = yaml_keys(results[0].changes)
        print(json.dumps(out, indent=2))
        return 0

    margin = default_margin(vram) if args.margin is None else args.margin
    print(f"{args.model} on {where}, margin {margin:.1f} GiB:")
    for r in results:
        mark = "fits" if r.fits else "no"
        used = min(1.0, r.estimate.total_gb / vram)
        bar = "█" * round(used * 20) + "·" * (20 - round(used * 20))
        print(f"  {mark:<4} {r.profile.name:<16} {r.estimate.total_gb:6.1f} GiB [{bar}] "
              + (f"{r.headroom_gb:+.1f} GiB" if r.fits or r.headroom_gb >= 0 else f"{-r.headroom_gb:.1f} GiB over"))
        if n > 1:
            print("       per GPU: " + " + ".join(f"{v:.1f} {k.replace('_', ' ')}" for k, v in
                                                 parts(r.estimate).items()))
        if r.suggestion:
            print(f"       {r.suggestion}")
        if args.config and r.changes:
            print(_yaml_changes(args.config, r.changes))
    if not any(r.fits for r in results):
        print("nothing fits as is; the suggestions above say what would", file=sys.stderr)
    return 0
