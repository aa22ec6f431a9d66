"""The `tunedoc` command: with no arguments the Textual app, else one headless command.

Each command lives in its package's `cli.py` as a pair of functions `<name>_args(parser)` and
`<name>_main(args) -> int`. Modules are imported only for the command that runs, so `tunedoc --help` and the
doctor start instantly and never import torch.

`watch` and `demo` open the Textual app in a terminal, so their screen half lives here (the top of the
dependency graph): trainer/ never imports tui/ (DESIGN.md); their plain-text half stays in trainer/cli.py.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tunedoc import __version__

# name -> (module, function prefix, one-line help). Order is the order `tunedoc --help` lists them.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "doctor": ("tunedoc.doctor.cli", "doctor", "Diagnose the NVIDIA driver, CUDA, PyTorch and bitsandbytes, and give the exact fix"),
    "models": ("tunedoc.models.cli", "models", "List, search, inspect and delete Hugging Face models (local cache and Hub)"),
    "download": ("tunedoc.models.cli", "download", "Download a model from the Hub or a mirror, with resume and a disk check"),
    "login": ("tunedoc.models.cli", "login", "Store a Hugging Face token the way huggingface_hub does"),
    "profiles": ("tunedoc.profiles.cli", "profiles", "List the built-in QLoRA/LoRA training profiles"),
    "estimate": ("tunedoc.profiles.cli", "estimate", "Estimate the peak VRAM of training a model with a profile, with a breakdown"),
    "fit": ("tunedoc.profiles.cli", "fit", "Rank the profiles that fit this GPU's free VRAM, and say why others do not"),
    "data": ("tunedoc.trainer.datacheck", "data", "Check a data set: problems with line numbers, counts, token lengths"),
    "train": ("tunedoc.trainer.cli", "train", "Fine-tune a model with QLoRA/LoRA as its own process"),
    "runs": ("tunedoc.trainer.cli", "runs", "List training runs"),
    "watch": ("tunedoc.cli", "watch", "Follow a run: the live screen, or lines with --plain"),
    "stop": ("tunedoc.trainer.cli", "stop", "Ask a run to save a checkpoint and stop"),
    "pause": ("tunedoc.trainer.cli", "pause", "Ask a run to pause after the current step"),
    "resume": ("tunedoc.trainer.cli", "resume", "Resume a paused run"),
    "save": ("tunedoc.trainer.cli", "save", "Ask a run to save a checkpoint now"),
    "export": ("tunedoc.trainer.cli", "export", "Export a run's LoRA adapter, or a merged model"),
    "chat": ("tunedoc.trainer.cli", "chat", "Generate with a base model plus a run's adapter"),
    "eval": ("tunedoc.trainer.eval_cli", "eval", "Score a run's answers on held-out examples (BLEU-4, ROUGE), base vs tuned"),
    "compare": ("tunedoc.trainer.compare", "compare", "Compare runs: method, memory, time, loss, BLEU-4, ROUGE-L (--html page)"),
    "demo": ("tunedoc.cli", "demo", "Build a tiny local model and data set and train it (no GPU or download needed)"),
    "serve": ("tunedoc.tui.cli", "serve", "Serve the app in a browser behind a token (textual-serve), for RDP or tunnels"),
}


# ------------------------------------------------------------------------------- watch and demo: the screen half
def _in_a_terminal() -> bool:
    return sys.stdout.isatty() and sys.stdin.isatty()


def watch_args(parser: argparse.ArgumentParser) -> None:
    from tunedoc.trainer.cli import watch_args as plain_args

    plain_args(parser)


def watch_main(args) -> int:
    """The live screen in a terminal; lines (trainer/cli.py) with --plain/--json or when not a terminal."""
    from tunedoc.trainer import cli as plain

    if args.plain or args.json or not _in_a_terminal():
        return plain.watch_main(args)
    run_dir = plain._resolve(args.run, args.runs_dir)
    if run_dir is None:
        return 2
    return _open_app(run_dir, args.runs_dir)


def demo_args(parser: argparse.ArgumentParser) -> None:
    from tunedoc.trainer.cli import demo_args as plain_args

    plain_args(parser)


def demo_main(args) -> int:
    """In a terminal: a child `tunedoc demo --detach` builds the model and starts the run, and this process
    opens the app on it without importing torch (DESIGN.md); quitting the app leaves the run going. Otherwise
    (--headless, --json, --detach, --nproc, not a terminal) trainer/cli.py runs it with progress lines."""
    from tunedoc.trainer import cli as plain

    if args.detach or args.nproc or args.headless or args.json or not _in_a_terminal():
        return plain.demo_main(args)
    from pathlib import Path

    from tunedoc.trainer.demo import PROMPT
    from tunedoc.trainer.rundir import default_runs_dir
    from tunedoc.tui.train_backend import TrainBackend

    print(f"building a tiny Llama model and an identity data set for {args.identity!r}...", file=sys.stderr,
          flush=True)
    root = Path(args.runs_dir) if args.runs_dir else default_runs_dir()
    try:
        run_dir = TrainBackend(root).start_demo(args.identity, args.steps, maker=args.maker)
    except RuntimeError as e:
        print(f"tunedoc demo: {e}", file=sys.stderr)
        return 1
    code = _open_app(run_dir, root)
    print(f"ask it once done: tunedoc chat {run_dir.name} --prompt \"{PROMPT}\"", file=sys.stderr)
    return code


def _open_app(run_dir, runs_dir) -> int:
    """The Textual app on the Train screen, attached to `run_dir` (its whole history, then live). Quitting the app
    leaves the run going; `tunedoc watch RUN` re-attaches."""
    from pathlib import Path

    from tunedoc.tui.app import make_app
    from tunedoc.tui.train_backend import TrainBackend

    root = Path(runs_dir) if runs_dir else Path(run_dir).resolve().parent
    app = make_app(start="train", train_backend=TrainBackend(root, attach=Path(run_dir).resolve()))
    app.run()
    print(f"left {Path(run_dir).name} running on its own; `tunedoc watch {Path(run_dir).name}` re-attaches",
          file=sys.stderr)
    return app.return_code or 0


def _top_parser() -> argparse.ArgumentParser:
    lines = [f"  {name:<10} {help_}" for name, (_, _, help_) in COMMANDS.items()]
    parser = argparse.ArgumentParser(
        prog="tunedoc",
        description="tunedoc: set up a GPU box for LLM fine-tuning and watch the run.\n"
        "With no command, opens the terminal app.",
        epilog="commands:\n" + "\n".join(lines) + "\n\nRun `tunedoc COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tunedoc {__version__}")
    parser.add_argument("command", nargs="?", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = _top_parser()
        if argv and not argv[0].startswith("-"):
            parser.error(f"unknown command {argv[0]!r}; choose from: {', '.join(COMMANDS)}")
        parser.parse_args(argv)  # handles --help / --version and rejects unknown options
        from tunedoc.tui.cli import app_main

        return app_main()
    name, rest = argv[0], argv[1:]
    module_name, prefix, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"tunedoc {name}", description=help_)
    getattr(module, f"{prefix}_args")(parser)
    args = parser.parse_args(rest)
    try:
        return int(getattr(module, f"{prefix}_main")(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
