"""`tunedoc data check FILE`: validate a data set without training, and show what training would see.

It lists every problem (exit 1), else prints counts per format and role, a token-length histogram (exact with
--model's tokenizer and chat template, otherwise a labelled estimate from characters), how many samples
--cutoff-len truncates, and how much of each batch is padding without packing vs with it.
stdout carries the report (or JSON with --json); diagnostics go to stderr. No torch is imported.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

CHARS_PER_TOKEN = 4  # rough English average for BPE tokenizers; only used without --model
TEMPLATE_CHARS = 12  # per message: role markers and separators of a ChatML-like template


def data_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="check|fill")
    c = sub.add_parser("check", help="validate a data set and show counts, token lengths and padding waste",
                       description="Validate a data set (every problem with its line) and show counts, token lengths, "
                                   "truncation and padding waste. Exit 1 when there are problems.")
    c.add_argument("path", metavar="FILE", help="a .json/.jsonl data file, or a directory with dataset_info.json")
    c.add_argument("--format", default="auto", choices=("auto", "alpaca", "sharegpt", "openai"),
                   help="data format (default: detect from the records)")
    c.add_argument("--dataset", metavar="NAME[,NAME]",
                   help="the entries of dataset_info.json (or a v1 YAML spec) to check, as LLaMA-Factory's "
                        "`dataset:`; the others are not read")
    c.add_argument("--set", dest="sets", action="append", default=[], metavar="identity_name=VALUE",
                   help="fill a placeholder such as {{name}} before checking (identity_name=Tuna or name=Tuna; "
                        "repeatable)")
    c.add_argument("--model", help="model directory or Hub id whose tokenizer and chat template count the tokens "
                                   "(without it, lengths are estimated from characters)")
    c.add_argument("--cutoff-len", type=int, default=1024, metavar="N",
                   help="the profile's cutoff_len: longer samples are truncated (default: 1024)")
    c.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    f = sub.add_parser("fill", help="write a copy of a data file with {{name}}-style placeholders filled",
                       description="Write a copy of a JSON/JSONL data file (such as LLaMA-Factory's identity.json) "
                                   "with placeholders like {{name}} and {{author}} replaced in every text.")
    f.add_argument("path", metavar="FILE", help="a .json/.jsonl data file")
    f.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE", required=True,
                   help="a placeholder's value: --set name=Tuna --set author=ACME (identity_name= works too)")
    f.add_argument("--out", help="where to write the copy (default: FILE.filled.json beside it)")
    f.add_argument("--in-place", action="store_true", help="replace FILE itself")


def parse_fills(sets: list[str]) -> tuple[dict[str, str], list[str]]:
    """({placeholder: value}, problems) from `identity_name=Tuna` / `name=Tuna` strings."""
    fill, bad = {}, []
    for item in sets:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("identity_")
        if not sep or not key:
            bad.append(f"--set {item!r}: expected NAME=VALUE, e.g. identity_name=Tuna")
        else:
            fill[key] = value.strip()
    return fill, bad


def split_identity_sets(sets: list[str]) -> tuple[dict[str, str], list[str]]:
    """`--set` items for the data (identity_*=...) apart from the profile's: ({placeholder: value}, the rest)."""
    ident = [s for s in sets if s.strip().startswith("identity_")]
    fill, _ = parse_fills(ident)
    return fill, [s for s in sets if s not in ident]


def _estimate_tokens(conv) -> int:
    chars = sum(len(m["content"]) + TEMPLATE_CHARS for m in conv.messages)
    return max(1, -(-chars // CHARS_PER_TOKEN))


def _token_lengths(convs, model: str, cutoff_len: int) -> dict:
    """stats() with the model's tokenizer; a progress bar on stderr for big data sets."""
    from transformers import AutoTokenizer

    from tunedoc.trainer import data as D

    tok = AutoTokenizer.from_pretrained(model)
    samples = []
    show = sys.stderr.isatty() and len(convs) > 2000
    if show:
        from rich.console import Console
        from rich.progress import Progress

        with Progress(console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("tokenizing", total=len(convs))
            for i in range(0, len(convs), 500):
                samples += D.build_samples(convs[i:i + 500], tok, cutoff_len)
                bar.advance(task, len(convs[i:i + 500]))
    else:
        samples = D.build_samples(convs, tok, cutoff_len)
    return D.stats(samples, cutoff_len)


def check(path: str, fmt: str = "auto", model: str | None = None, cutoff_len: int = 1024,
          datasets: list[str] | None = None, fill: dict[str, str] | None = None) -> dict:
    """The whole report as a dict (what --json prints). Raises FileNotFoundError / ValueError for bad arguments,
    and TemplateError / OSError from loading the tokenizer."""
    from tunedoc.trainer import data as D

    report: dict = {"path": str(path), "ok": True, "problems": [], "notes": []}
    if datasets:
        report["datasets"] = datasets
    try:
        convs = D.load_conversations(path, fmt, datasets=datasets, fill=fill, notes=report["notes"])
    except D.DataError as e:
        report.update(ok=False, problems=[{"where": p.where, "message": p.message} for p in e.problems])
        return report
    report["conversations"] = len(convs)
    report["formats"] = dict(Counter(c.format for c in convs))
    report["roles"] = dict(Counter(m["role"] for c in convs for m in c.messages))
    report["with_system"] = sum(1 for c in convs if c.messages and c.messages[0]["role"] == "system")
    report["assistant_turns"] = report["roles"].get("assistant", 0)
    if not convs:
        report.update(ok=False, problems=[{"where": str(path), "message": "no conversations"}])
        return report
    if model:
        lengths = _token_lengths(convs, model, cutoff_len)
        lengths.update(unit="tokens", tokenizer=model)
    else:
        lengths = D.length_stats([_estimate_tokens(c) for c in convs], cutoff_len)
        lengths.update(unit=f"estimated tokens (characters / {CHARS_PER_TOKEN})", tokenizer=None)
    report["lengths"] = lengths
    return report


# ------------------------------------------------------------------------------------------------------------------
# human output


def _bar(n: int, most: int, width: int = 40) -> str:
    if not n:
        return ""
    full = n * width / most
    return "█" * int(full) + ("▌" if full - int(full) >= 0.5 else "") or "▏"


def render(report: dict, console) -> None:
    from rich.table import Table

    from rich.markup import escape

    for note in report.get("notes", []):
        console.print(f"[yellow]note[/]: {escape(note)}", highlight=False, soft_wrap=True)

    if not report["ok"]:
        n = len(report["problems"])
        console.print(f"[bold red]{n} problem{'s' if n != 1 else ''}[/] in {report['path']}:")
        from tunedoc.trainer.data.formats import MAX_LISTED

        for p in report["problems"][:MAX_LISTED]:
            console.print(f"  [cyan]{escape(p['where'])}[/]: {escape(p['message'])}", highlight=False,
                          soft_wrap=True)
        if n > MAX_LISTED:
            console.print(f"  ... and {n - MAX_LISTED} more (--json lists all)")
        return
    formats = ", ".join(f"{k} {v}" for k, v in report["formats"].items())
    roles = ", ".join(f"{k} {v}" for k, v in sorted(report["roles"].items()))
    console.print(f"[bold green]ok[/] {report['path']}: {report['conversations']} conversations ({formats})",
                  highlight=False)
    console.print(f"messages: {roles}; {report['with_system']} with a system prompt", highlight=False)

    st = report["lengths"]
    unit = st["unit"]
    console.print()
    console.print(f"[bold]length[/] in {unit}" + ("" if st["tokenizer"] else
                                                  "  [yellow](pass --model for exact counts)[/]"))
    console.print(f"  min {st['min']}  median {st['median']}  mean {st['mean']}  p95 {st['p95']}  max {st['max']}",
                  highlight=False)
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column(unit.split(" (")[0], justify="right")
    table.add_column("samples", justify="right")
    table.add_column("")
    most = max(b["count"] for b in st["histogram"]) or 1
    for b in st["histogram"]:
        over = b["lo"] >= st["cutoff_len"]
        label = f"{b['lo']}-{b['hi'] - 1}"
        table.add_row(f"[red]{label}[/]" if over else label, str(b["count"]),
                      f"[red]{_bar(b['count'], most)}[/]" if over else _bar(b["count"], most))
    console.print(table)
    cut = st["cutoff_len"]
    if st["truncated"]:
        console.print(f"[yellow]{st['truncated']} of {st['samples']} samples are longer than cutoff_len {cut}[/] and "
                      f"lose their end (raise --cutoff-len / `--set cutoff_len=...`, or shorten them)")
    else:
        console.print(f"cutoff_len {cut}: no sample is truncated")
    if "no_supervised_tokens" in st and st["no_supervised_tokens"]:
        console.print(f"[yellow]{st['no_supervised_tokens']} samples have no assistant tokens left within "
                      f"cutoff_len[/]: training skips them")
    pad, packed = st["padding"]["pad_to_cutoff"], st["padding"]["packing"]
    console.print()
    console.print(f"[bold]padding[/] in rows of {cut}: one sample per row wastes {pad['waste']:.0%} "
                  f"({pad['rows']} rows); packing wastes {packed['waste']:.0%} ({packed['rows']} rows, "
                  f"{pad['rows'] / max(1, packed['rows']):.1f}x fewer)", highlight=False)


def fill_main(args: argparse.Namespace) -> int:
    from tunedoc.trainer.data.formats import PLACEHOLDER, fill_file

    fill, bad = parse_fills(args.sets)
    if bad:
        print("tunedoc: " + "\n".join(bad), file=sys.stderr)
        return 2
    try:
        out, n = fill_file(args.path, fill, args.path if args.in_place else args.out)
    except FileNotFoundError:
        print(f"tunedoc: {args.path} does not exist", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:
        print(f"tunedoc: cannot fill {args.path}: {e}", file=sys.stderr)
        return 2
    left = sorted(set(PLACEHOLDER.findall(out.read_text(encoding="utf-8"))))
    print(out)
    print(f"{n} placeholder{'s' if n != 1 else ''} filled" + (f"; still unfilled: {', '.join('{{' + x + '}}' for x in left)}"
                                                         if left else ""), file=sys.stderr)
    return 0


def data_main(args: argparse.Namespace) -> int:
    if args.action == "fill":
        return fill_main(args)
    fill, bad = parse_fills(args.sets)
    if bad:
        print("tunedoc: " + "\n".join(bad), file=sys.stderr)
        return 2
    datasets = [d.strip() for d in args.dataset.split(",") if d.strip()] if args.dataset else None
    if args.cutoff_len < 2:
        print(f"tunedoc: --cutoff-len must be at least 2, got {args.cutoff_len}", file=sys.stderr)
        return 2
    if args.model and any(c in args.model for c in "/\\") and not args.model.count("/") == 1 \
            and not __import__("os").path.isdir(args.model):
        print(f"tunedoc: model directory {args.model!r} does not exist\n  fix: pass a model directory (with "
              "tokenizer.json) or a Hub id like Qwen/Qwen2.5-0.5B-Instruct", file=sys.stderr)
        return 2
    try:
        report = check(args.path, args.format, args.model, args.cutoff_len, datasets, fill)
    except FileNotFoundError as e:
        print(f"tunedoc: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # the tokenizer could not be loaded (not found, offline, gated)
        print(f"tunedoc: cannot load the tokenizer of {args.model!r}: {e}\n  fix: pass a local model directory, "
              f"or download it first with `tunedoc download {args.model}`", file=sys.stderr)
        return 2
    except ValueError as e:  # TemplateError and friends
        print(f"tunedoc: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        from rich.console import Console

        render(report, Console())
    return 0 if report["ok"] else 1
