"""`tunedoc compare RUN... [--json|--markdown|--html FILE]`: the table fine-tuning write-ups end with.

One row per run (and one for the base model, from the newest eval with base scores among them: `tunedoc eval --base`
or a run's closing eval): method (quant, LoRA
rank, targets), trainable parameters, peak memory, training time, tokens/s, final train and eval loss, BLEU-4 and
ROUGE-L of the newest generation eval; the best value of each column is marked. `--html` writes one self-contained
page (plotly's bundled JavaScript inlined: it opens with no network) with the loss curves, the scores and the table.

Everything is read from the runs' config.json and events.jsonl; no torch here (the Runs screen uses compare_rows).
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path

from tunedoc.trainer.events import format_duration, read_events
from tunedoc.trainer.rundir import CONFIG, EVENTS, RunNotFound, read_json, resolve_run

# key, heading, better ("min" | "max" | None), format
COLUMNS = [
    ("run", "run", None), ("method", "method", None), ("trainable", "trainable params", None),
    ("peak_mem_mb", "peak mem", "min"), ("time_s", "time", "min"), ("tokens_per_s", "tokens/s", "max"),
    ("train_loss", "train loss", "min"), ("eval_loss", "eval loss", "min"), ("bleu4", "BLEU-4", "max"),
    ("rougeL", "ROUGE-L", "max"),
]


def _isnum(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x


def method_of(profile: dict) -> str:
    quant = {"none": "16-bit LoRA", "int8": "int8 LoRA", "nf4": "nf4 QLoRA", "nf4-dq": "nf4-dq QLoRA"}.get(
        profile.get("quant", "?"), str(profile.get("quant", "?")))
    targets = profile.get("lora_targets", "all-linear")
    if isinstance(targets, list):
        targets = "all-linear" if len(targets) >= 7 else ",".join(t.replace("_proj", "") for t in targets)
    return f"{quant} r{profile.get('lora_r', '?')} {targets}"


def latest_generation_eval(events: list[dict]) -> dict | None:
    """The newest `eval` event of kind generation, preferring full evals (`tunedoc eval`'s and the run's closing eval,
    source "final") over the small training-time ones."""
    gen = [e for e in events if e.get("type") == "eval" and e.get("kind") == "generation"]
    full = [e for e in gen if e.get("source") in ("tunedoc eval", "final")]
    return (full or gen or [None])[-1]


def run_row(run_dir: Path) -> dict:
    """The comparison row of one run, plus its loss curve and its newest eval (for the base row)."""
    config = read_json(run_dir / CONFIG)
    events, _ = read_events(run_dir / EVENTS)
    start = next((e for e in reversed(events) if e.get("type") == "start"), {})
    first_start = next((e for e in events if e.get("type") == "start"), {})
    steps: dict[int, dict] = {}
    for e in events:
        if e.get("type") == "start" and e.get("resumed_from_step"):
            for s in [s for s in steps if s > e["resumed_from_step"]]:
                del steps[s]
        if e.get("type") == "step" and isinstance(e.get("step"), int):
            steps[e["step"]] = e
    done = next((e for e in reversed(events) if e.get("type") == "done"), None)
    curve = [(s, e["loss"]) for s, e in sorted(steps.items()) if _isnum(e.get("loss"))]
    last = steps[max(steps)] if steps else {}
    peaks = [e["peak_mem_mb"] for e in steps.values() if _isnum(e.get("peak_mem_mb"))]
    tps = [e["tokens_per_s"] for e in steps.values() if _isnum(e.get("tokens_per_s"))]
    train_loss = done.get("final_loss") if done and _isnum(done.get("final_loss")) else (curve[-1][1] if curve else None)
    loss_evals = [e for e in events if e.get("type") == "eval" and _isnum(e.get("loss"))]
    gen = latest_generation_eval(events)
    eval_loss = loss_evals[-1]["loss"] if loss_evals else (gen or {}).get("eval_loss")
    return {
        "run": run_dir.name, "run_dir": str(run_dir), "model": config.get("model") or start.get("model"),
        "method": method_of(config.get("profile", {})), "quant": config.get("profile", {}).get("quant"),
        "trainable": start.get("trainable_params") or first_start.get("trainable_params"),
        "peak_mem_mb": max(peaks) if peaks else None, "mem_kind": last.get("mem_kind"),
        "time_s": done.get("elapsed_s") if done else last.get("elapsed_s"),
        "tokens_per_s": sum(tps) / len(tps) if tps else None,
        "train_loss": train_loss, "eval_loss": eval_loss,
        "bleu4": (gen or {}).get("bleu4"), "rougeL": (gen or {}).get("rougeL"),
        "status": done.get("status") if done else ("running" if start else "waiting"),
        "curve": curve, "eval": gen,
    }


def compare_rows(run_dirs: list[Path]) -> list[dict]:
    """A base row (when an eval with --base exists among the runs; the newest) and one row per run, with
    row["best"] = the columns where the row holds the best value."""
    rows = [run_row(Path(d)) for d in run_dirs]
    with_base = [r for r in rows if (r["eval"] or {}).get("base")]
    out = []
    if with_base:
        src = max(with_base, key=lambda r: r["eval"].get("t", 0))
        b = src["eval"]["base"]
        out.append({"run": "base", "run_dir": None, "model": src["model"], "method": "base model (no adapter)",
                    "trainable": 0, "peak_mem_mb": None, "time_s": None, "tokens_per_s": None, "train_loss": None,
                    "eval_loss": b.get("eval_loss"), "bleu4": b.get("bleu4"), "rougeL": b.get("rougeL"),
                    "status": f"from {src['run']}'s eval", "curve": [], "eval": None})
    out.extend(rows)
    for r in out:
        r["best"] = []
    for key, _, better in COLUMNS:
        if better is None:
            continue
        vals = [r[key] for r in out if _isnum(r.get(key))]
        if len(vals) < 2:
            continue
        target = min(vals) if better == "min" else max(vals)
        for r in out:
            if _isnum(r.get(key)) and r[key] == target:
                r["best"].append(key)
    return out


def cell(row: dict, key: str) -> str:
    v = row.get(key)
    if key in ("run", "method"):
        return str(v)
    if not _isnum(v):
        return "-"
    if key == "trainable":
        return f"{v:,}"
    if key == "peak_mem_mb":
        return f"{v:,.0f} MB" + (" RSS" if row.get("mem_kind") == "rss" else "")
    if key == "time_s":
        return format_duration(v)
    if key == "tokens_per_s":
        return f"{v:,.0f}"
    if key in ("train_loss", "eval_loss"):
        return f"{v:.4f}"
    return f"{v:.2f}"


def format_text(rows: list[dict]) -> str:
    table = [[h for _, h, _ in COLUMNS]]
    for r in rows:
        table.append([cell(r, k) + (" *" if k in r["best"] else "") for k, _, _ in COLUMNS])
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in table]
    lines.append("* best in its column; BLEU-4 / ROUGE-L: each run's newest `tunedoc eval` or closing eval (0-100)")
    if any(r.get("mem_kind") == "rss" for r in rows):
        lines.append("RSS: a CPU run's process memory, not GPU memory")
    return "\n".join(lines)


def format_markdown(rows: list[dict]) -> str:
    head = "| " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    sep = "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|"
    body = ["| " + " | ".join(f"**{cell(r, k)}**" if k in r["best"] else cell(r, k).replace("|", "\\|")
                              for k, _, _ in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body, "", "Bold: best in its column. BLEU-4 / ROUGE-L: 0-100."])


def plotly_js() -> str:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise RuntimeError("--html needs plotly (in the [eval] extra), which is not installed; install with:\n  "
                           f"{sys.executable} -m pip install 'tunedoc[eval]'   (or: {sys.executable} -m pip "
                           "install plotly)") from None
    return get_plotlyjs()


def format_html(rows: list[dict]) -> str:
    """One self-contained page: plotly's JavaScript inline, the loss curves, the scores and the table."""
    js = plotly_js()
    runs = [r for r in rows if r["run"] != "base"]
    loss = {"data": [{"type": "scatter", "mode": "lines", "name": r["run"], "x": [s for s, _ in r["curve"]],
                      "y": [v for _, v in r["curve"]]} for r in runs],
            "layout": {"title": {"text": "training loss"}, "xaxis": {"title": {"text": "step"}},
                       "yaxis": {"title": {"text": "loss"}}, "margin": {"t": 40}}}
    scored = [r for r in rows if _isnum(r.get("bleu4")) or _isnum(r.get("rougeL"))]
    scores = {"data": [{"type": "bar", "name": label, "x": [r["run"] for r in scored],
                        "y": [r.get(key) for r in scored]} for key, label in (("bleu4", "BLEU-4"), ("rougeL", "ROUGE-L"))],
              "layout": {"title": {"text": "held-out scores (0-100)"}, "barmode": "group", "margin": {"t": 40}}}
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in COLUMNS)
    body = "".join("<tr>" + "".join(
        f"<td class=\"{'best' if k in r['best'] else ''}{' num' if i >= 2 else ''}\">{html.escape(cell(r, k))}</td>"
        for i, (k, _, _) in enumerate(COLUMNS)) + "</tr>" for r in rows)
    charts = ("<div id=\"loss\" class=\"chart\"></div>" + ("<div id=\"scores\" class=\"chart\"></div>" if scored else ""))
    script = (f"Plotly.newPlot('loss', {json.dumps(loss['data'])}, {json.dumps(loss['layout'])}, "
              "{displaylogo: false, responsive: true});")
    if scored:
        script += (f"Plotly.newPlot('scores', {json.dumps(scores['data'])}, {json.dumps(scores['layout'])}, "
                   "{displaylogo: false, responsive: true});")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tunedoc compare</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-top: 1em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .3em .7em; text-align: left; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td.best {{ font-weight: bold; background: #e6f4ea; }}
.chart {{ width: 100%; max-width: 1000px; height: 380px; }}
</style>
<script>{js}</script>
</head><body>
<h1>tunedoc compare</h1>
<p>{len(runs)} run(s); best value per column highlighted. BLEU-4 and ROUGE-L (0-100) are each run's newest
<code>tunedoc eval</code> (or its closing eval); the base row is the base model alone on the same prompts.</p>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{charts}
<script>{script}</script>
</body></html>
"""


def public_rows(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("curve", "eval")} for r in rows]


# ------------------------------------------------------------------------------------------------------------ CLI
def compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN", help="runs to compare (id, unique prefix, or directory)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="the rows as JSON")
    out.add_argument("--markdown", action="store_true", help="a Markdown table (best values in bold)")
    p.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained page with the loss curves, "
                   "the scores and the table (opens with no network)")
    p.add_argument("--runs-dir", type=Path, default=None,
                   help="where runs live (default: $TUNEDOC_RUNS_DIR or ./runs)")


def compare_main(args) -> int:
    dirs = []
    for arg in args.runs:
        try:
            dirs.append(resolve_run(arg, args.runs_dir))
        except RunNotFound as e:
            print(f"tunedoc compare: {e}", file=sys.stderr)
            return 2
    rows = compare_rows(dirs)
    if args.html:
        try:
            page = format_html(rows)
        except RuntimeError as e:
            print(f"tunedoc compare: {e}", file=sys.stderr)
            return 2
        Path(args.html).write_text(page, encoding="utf-8")
        print(f"wrote {args.html}", file=sys.stderr)
    if args.json:
        print(json.dumps(public_rows(rows), indent=2))
    elif args.markdown:
        print(format_markdown(rows))
    else:
        print(format_text(rows))
    return 0


def eval_dirs(run_dir: Path) -> list[Path]:
    """The run's eval result folders (RUN/eval/<time>/ with scores.json), oldest first."""
    root = Path(run_dir) / "eval"
    return sorted(p for p in root.glob("*") if (p / "scores.json").is_file()) if root.is_dir() else []


def read_eval(eval_dir: Path) -> tuple[dict, list[dict]]:
    """(scores.json, the examples) of one eval folder."""
    scores = read_json(Path(eval_dir) / "scores.json")
    rows = []
    try:
        lines = (Path(eval_dir) / "examples.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return scores, rows
