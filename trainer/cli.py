"""Commands: train, runs, watch, stop, pause, resume, save, export, chat, demo (`<name>_args` / `<name>_main`).

stdout carries data (progress lines, JSON lines with --json, run ids, replies); stderr carries diagnostics.
torch is imported only by the commands that need it (export, chat, and the trainer child process).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from tunedoc.trainer.events import follow, format_duration, format_event
from tunedoc.trainer.rundir import RunNotFound, default_runs_dir, list_runs, resolve_run, run_status


def _err(msg: str) -> None:
    print(f"tunedoc: {msg}", file=sys.stderr)


def _runs_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", type=Path, default=None,
                        help="where runs live (default: $TUNEDOC_RUNS_DIR or ./runs)")


def _resolve(arg: str, runs_dir) -> Path | None:
    try:
        return resolve_run(arg, runs_dir)
    except RunNotFound as e:
        _err(str(e))
        return None


# ----------------------------------------------------------------------------------------------------------- train
def train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model directory, Hugging Face Hub id, or modelscope://OWNER/NAME (a model "
                                   "downloaded with `tunedoc download --source modelscope`)")
    p.add_argument("--data", help="data file (.json/.jsonl) or a directory with dataset_info.json")
    p.add_argument("--format", default="auto", choices=["auto", "alpaca", "sharegpt", "openai"],
                   help="data format (default: detect)")
    p.add_argument("--dataset", metavar="NAME[,NAME]",
                   help="the entries of --data's dataset_info.json to train on, as LLaMA-Factory's `dataset:`")
    p.add_argument("--config", metavar="FILE.yaml",
                   help="a LLaMA-Factory SFT config (llamafactory-cli train FILE.yaml): its model, data sets and "
                        "settings become the run (its template: must be the model's own chat template, which "
                        "tunedoc trains in); --model/--data/--set still override")
    p.add_argument("--dry-run", action="store_true",
                   help="check everything and print the profile the run would get (TOML), then stop")
    p.add_argument("--profile", default=None,
                   help="built-in profile name (`tunedoc profiles` lists them) or a .toml file (default: qlora-balanced)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override one profile field, e.g. --set lr=1e-4 --set max_steps=200 (repeatable); "
                        "identity_name=... identity_author=... fill the data's {{name}}/{{author}} placeholders")
    _runs_dir_arg(p)
    p.add_argument("--name", help="a readable name that becomes part of the run id")
    p.add_argument("--detach", action="store_true",
                   help="start the run as its own process, print its id and directory, and return at once")
    p.add_argument("--json", action="store_true", help="print events as JSON lines instead of text")
    p.add_argument("--resume", metavar="RUN", help="continue RUN (id, prefix or path) from its last checkpoint")
    p.add_argument("--python", help="interpreter that trains (default: this one)")
    _launch_args(p)


def _launch_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("several GPUs, processes or machines (data-parallel or sharded, through torchrun)")
    g.add_argument("--gpus", metavar="all|N|0,2",
                   help="GPUs to train on: all (default), a count, or indices as nvidia-smi numbers them "
                   "(a single card: --gpus 1,). More than one starts one process per GPU through torchrun")
    g.add_argument("--nproc", type=int, metavar="N",
                   help="N processes on the CPU (gloo), to try data-parallel training without GPUs")
    _strategy_arg(g)
    g.add_argument("--nnodes", type=int, default=1, help="machines taking part (default 1); start the same "
                   "command on each with its own --node-rank")
    g.add_argument("--node-rank", type=int, default=0, help="this machine's rank, 0..nnodes-1 (0 is the master)")
    g.add_argument("--master-addr", help="address of node 0, reachable from every node (with --nnodes > 1)")
    g.add_argument("--master-port", type=int, default=29500, help="port of the rendezvous on node 0 (default 29500)")


def _strategy_arg(p) -> None:
    p.add_argument("--strategy", choices=["auto", "ddp", "fsdp"],
                   help="how several GPUs/processes share the model (the profile's `strategy`, default auto): ddp "
                   "(each holds all of it), fsdp (sharded, FSDP-QLoRA: 1/N of the weights, adapter and optimizer states per "
                   "GPU; rank 0 loads the model into CPU RAM and each GPU receives only its shards); auto picks ddp "
                   "when the model fits one GPU by the estimate, fsdp when only its shards fit, ddp for --nproc")


def _plan_launch(args) -> dict | None:
    """config.json's "launch" from the flags; None (after an error message) when they do not make sense."""
    from tunedoc.trainer.launch import plan_launch

    try:
        return plan_launch(gpus=args.gpus, nproc=args.nproc, nnodes=args.nnodes, node_rank=args.node_rank,
                           master_addr=args.master_addr, master_port=args.master_port)
    except ValueError as e:
        _err(str(e))
        return None


def train_main(args) -> int:
    from tunedoc.profiles.profile import ProfileError
    from tunedoc.trainer.launch import resume_run, start_run

    if args.resume:
        run_dir = _resolve(args.resume, args.runs_dir)
        if run_dir is None:
            return 2
        events = run_dir / "events.jsonl"
        offset = events.stat().st_size if events.is_file() else 0
        try:
            handle = resume_run(run_dir, python=args.python, detach=args.detach)
        except RuntimeError as e:
            _err(str(e))
            return 2
    else:
        prep = _prepare_train(args)
        if prep is None:
            return 2
        model, data, fmt, profile, sets = prep["model"], prep["data"], prep["format"], prep["profile"], prep["sets"]
        if args.strategy:
            sets = [*sets, f"strategy={args.strategy}"]
        missing = [f"--{n}" for n, v in (("model", model), ("data", data)) if not v]
        if missing:
            _err(f"{' and '.join(missing)} required (or --resume RUN, or --config FILE.yaml); e.g. tunedoc train "
                 "--model ./my-model --data data.jsonl --profile qlora-min")
            return 2
        # the model, the profile and the data are checked before a run directory exists, and every problem
        # found is reported in one go
        from tunedoc.trainer.modelcheck import check_model

        problems = [p for p in ((None if args.dry_run else check_model(model)), _check_profile(profile, sets),
                                _check_checkpoint(model, profile, sets, prep.get("template")),
                                None if args.python else _check_loss(profile, sets),
                                prep.get("data_problem") or _check_data(data, fmt)) if p]
        if problems:
            _err("\n".join(problems))
            return 2
        if args.dry_run:
            return _print_profile(profile, sets, model, data)
        launch = _plan_launch(args)
        if launch is None:
            return 2
        try:
            handle = start_run(model, data, profile, sets, args.runs_dir, args.name, fmt,
                               python=args.python, detach=args.detach, launch=launch, extra=prep.get("extra"))
        except (ProfileError, FileNotFoundError, RuntimeError) as e:
            _err(str(e))
            return 2
    if args.detach:
        if args.json:
            print(json.dumps({"run_id": handle.run_id, "run_dir": str(handle.run_dir), "pid": handle.pid}))
        else:
            print(f"{handle.run_id}\t{handle.run_dir}")
            print(f"started in the background (pid {handle.pid}); follow it with `tunedoc watch {handle.run_id} "
                  f"--plain`, stop it with `tunedoc stop {handle.run_id}`", file=sys.stderr)
        return 0
    return _foreground(handle, args.json, offset if args.resume else 0)


def _prepare_train(args) -> dict | None:
    """The model, data, format, profile and --set items of a new run, from the flags and a LLaMA-Factory --config
    (its report on stderr). Picked data sets, filled placeholders and max_samples become one prepared JSONL beside
    the runs, so the run reads exactly what was checked. None after an error message."""
    from tunedoc.trainer.datacheck import split_identity_sets

    fill, sets = split_identity_sets(args.sets)
    datasets = [d.strip() for d in args.dataset.split(",") if d.strip()] if args.dataset else []
    out = {"model": args.model, "data": args.data, "format": args.format, "profile": args.profile, "sets": sets}
    max_samples, source = None, None
    if args.config:
        from tunedoc.trainer.llamafactory import ConfigError, read_config

        try:
            imp = read_config(args.config)
        except (ConfigError, FileNotFoundError) as e:
            _err(str(e))
            return None
        print("\n".join(imp.report()), file=sys.stderr)
        if imp.errors or imp.template_error:
            _err(f"{args.config}: keys that would change what is trained, which tunedoc cannot do:\n"
                 + "\n".join(f"  - {e}" for e in [*imp.errors, *filter(None, [imp.template_error])]))
            return None
        if args.profile:
            _err("--profile and --config both give the profile: use one (--set still overrides)")
            return None
        out["model"] = args.model or imp.model
        datasets = datasets or imp.dataset
        max_samples = imp.max_samples
        if not args.data:
            found = imp.data_dir()
            if found is None:
                _err(f"{args.config}: dataset_dir {imp.dataset_dir!r} (with a dataset_info.json) is not under "
                     f"{Path.cwd()} nor beside the config; pass --data DIR")
                return None
            out["data"] = str(found)
        out["profile"] = str(_prepared_dir(args) / f"{Path(args.config).stem}.toml")
        _write_profile_toml(imp.profile(), Path(out["profile"]))
        source = {"config": str(Path(args.config).resolve()), "dataset": datasets, "dataset_dir": imp.dataset_dir,
                  "max_samples": max_samples, "template": imp.template}
        out["template"] = imp.template
    out["profile"] = out["profile"] or _default_profile()
    if out["model"] and str(out["model"]).startswith("modelscope://"):
        from tunedoc.models import modelscope as ms

        repo = ms.strip_prefix(out["model"])[0]
        snap = ms.snapshot_path(repo)
        if not (snap / "config.json").is_file():
            _err(f"{out['model']} is not in the ModelScope cache ({ms.cache_dir()}); download it first: "
                 f"tunedoc download {repo} --source modelscope")
            return None
        out["model"] = str(snap)
    if datasets and not source:
        source = {"dataset": datasets, "dataset_dir": str(Path(out["data"]).resolve()) if out["data"] else None}
    if source:
        out["extra"] = {"llamafactory": source}
    if (datasets or fill or max_samples) and out["data"]:
        from tunedoc.trainer import data as D

        convs, problems = [], []
        for name in datasets or [None]:
            try:
                part = D.load_conversations(out["data"], args.format, datasets=[name] if name else None, fill=fill)
            except FileNotFoundError as e:
                out["data_problem"] = str(e)
                return out
            except D.DataError as e:
                problems += e.problems
                continue
            convs += part[:max_samples] if max_samples else part
        if problems:
            out["data_problem"] = (f"{D.DataError(problems)}\n(fix these and run again; `tunedoc data check "
                                   f"{out['data']}{' --dataset ' + ','.join(datasets) if datasets else ''}` re-checks)")
            return out
        import hashlib

        from tunedoc.trainer.data.formats import write_jsonl

        label = "+".join(datasets) if datasets else Path(out["data"]).stem
        digest = hashlib.sha256(repr([(c.messages, c.tools) for c in convs]).encode()).hexdigest()[:10]
        out["data"] = str(write_jsonl(convs, _prepared_dir(args) / f"{label[:60]}-{digest}.jsonl"))
        out["format"] = "openai"
        print(f"data: {len(convs)} conversations" + (f" from {', '.join(datasets)}" if datasets else "")
              + (f" (at most {max_samples} each)" if max_samples else "")
              + (f", placeholders filled ({', '.join(sorted(fill))})" if fill else "") + f" -> {out['data']}",
              file=sys.stderr)
    return out


def _prepared_dir(args) -> Path:
    """Where prepared data and profiles live: runs/.prepared/ (beside the runs that read them)."""
    root = Path(args.runs_dir) if args.runs_dir else default_runs_dir()
    d = root / ".prepared"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write_profile_toml(profile, path: Path) -> Path:
    lines = []
    for k, v in profile.to_dict().items():
        lines.append(f"{k} = {json.dumps(v, ensure_ascii=False)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _print_profile(name_or_path: str, sets: list[str], model: str, data: str) -> int:
    """--dry-run: the profile the run would get, as TOML on stdout (a file `--profile` reads back)."""
    from tunedoc.profiles.profile import load_profile

    profile = load_profile(name_or_path)
    if sets:
        profile = profile.with_overrides(sets)
    print(f"# tunedoc train --model {model} --data {data}")
    for k, v in profile.to_dict().items():
        print(f"{k} = {json.dumps(v, ensure_ascii=False)}")
    print("dry run: nothing started", file=sys.stderr)
    return 0


def _default_profile() -> str:
    from tunedoc.profiles.profile import builtin_names

    names = builtin_names()
    return "qlora-balanced" if "qlora-balanced" in names else (names[0] if names else None)


def _check_profile(name_or_path: str | None, sets: list[str]) -> str | None:
    """What is wrong with the profile and its --set overrides (a TOML syntax error as file:line:col), or None."""
    from tunedoc.profiles.profile import ProfileError, load_profile

    if not name_or_path:
        return None
    try:
        profile = load_profile(name_or_path)
        if sets:
            profile.with_overrides(sets)
    except (ProfileError, FileNotFoundError) as e:
        return str(e)
    return None


def _check_checkpoint(model: str, name_or_path: str | None, sets: list[str], template: str | None) -> str | None:
    """A pre-quantized checkpoint tunedoc cannot train (or not with this profile's quant), and a LLaMA-Factory
    `template:` that is not the model's own chat template, when the model's files are on this machine (the trainer
    checks the template again once its tokenizer is loaded)."""
    from tunedoc.profiles.profile import ProfileError, load_profile
    from tunedoc.trainer.llamafactory import template_problem
    from tunedoc.trainer.modelcheck import chat_template_of, checkpoint_problem

    try:
        quant = load_profile(name_or_path).with_overrides(sets or []).quant if name_or_path else "none"
    except (ProfileError, FileNotFoundError):
        quant = None  # _check_profile reports it
    problems = [checkpoint_problem(model, quant) if quant else None,
                template_problem(template, chat_template_of(model), model) if template else None]
    return "\n".join(p for p in problems if p) or None


def _check_loss(name_or_path: str | None, sets: list[str]) -> str | None:
    """loss_impl=fused without Liger-Kernel in this interpreter: what to install, before a run directory exists
    (another --python is checked by the trainer itself, at the start of its setup)."""
    from tunedoc.profiles.profile import ProfileError, load_profile

    try:
        profile = load_profile(name_or_path).with_overrides(sets or []) if name_or_path else None
    except (ProfileError, FileNotFoundError):
        return None  # _check_profile reports it
    if profile is None or profile.loss_impl != "fused":
        return None
    from tunedoc.trainer.loss import LIGER_PIP, liger_available

    if liger_available():
        return None
    return (f"loss_impl=fused needs Liger-Kernel, which is not installed: {LIGER_PIP}; or use loss_impl=chunked "
            "(the same memory saving in plain torch) or auto")


def _check_data(path: str, fmt: str) -> str | None:
    """Every problem in the data file, before a process or model starts; None when it loads."""
    try:
        from tunedoc.trainer import data as D
    except ImportError:  # pragma: no cover - the data layer is part of the package
        return None
    try:
        convs = D.load_conversations(path, fmt)
    except FileNotFoundError as e:
        return str(e)
    except D.DataError as e:
        return f"{e}\n(fix these and run again; `tunedoc data check {path}` re-checks without training)"
    if not convs:
        return f"{path} has no conversations"
    return None


def _foreground(handle, as_json: bool, offset: int = 0) -> int:
    """Follow a run started in this terminal from byte `offset` of its events (a resumed run: where the earlier
    session ended, its `done` event included); Ctrl-C asks it to save and stop (press again to leave it running)."""
    from tunedoc.trainer import control
    from tunedoc.trainer.events import read_events

    proc = handle.process
    events_path = handle.run_dir / "events.jsonl"
    print(f"run {handle.run_id} in {handle.run_dir} (log: {handle.run_dir / 'trainer.log'})", file=sys.stderr)
    status, interrupted = None, False
    while status is None:
        try:
            events, offset = read_events(events_path, offset)
            for event in events:
                _print_event(event, as_json)
                if event["type"] == "done":
                    status = event.get("status")
            if status is None and not events:
                if proc is not None and proc.poll() is not None:
                    events, offset = read_events(events_path, offset)
                    for event in events:
                        _print_event(event, as_json)
                        status = event.get("status") if event["type"] == "done" else status
                    break
                time.sleep(0.3)
        except KeyboardInterrupt:
            if interrupted:
                print(f"left running on its own: `tunedoc watch {handle.run_id} --plain`, "
                      f"`tunedoc stop {handle.run_id}`", file=sys.stderr)
                return 130
            interrupted = True
            print("\nstopping: saving a checkpoint first (Ctrl-C again leaves the run going on its own)",
                  file=sys.stderr)
            control.request(handle.run_dir, "stop")
    if proc is not None:
        try:
            proc.wait(timeout=60)
        except Exception:  # noqa: BLE001
            pass
    if status is None:
        log = handle.run_dir / "trainer.log"
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:] if log.exists() else []
        code = proc.returncode if proc is not None else None
        _err(f"the trainer process ended without finishing (exit code {code}); the end of {log}:\n"
             + "\n".join("  " + line for line in tail))
        return 1
    return 0 if status in ("completed", "stopped") else 1


def _print_event(event: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(event), flush=True)
    else:
        out = sys.stderr if event["type"] in ("warning", "error") else sys.stdout
        print(format_event(event), file=out, flush=True)


# ------------------------------------------------------------------------------------------------------------ runs
def runs_args(p: argparse.ArgumentParser) -> None:
    _runs_dir_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object per run")


def runs_main(args) -> int:
    root = Path(args.runs_dir) if args.runs_dir else default_runs_dir()
    if root.exists() and not root.is_dir():
        _err(f"--runs-dir {root} is a file, not a folder of runs; pass the folder that holds the run directories "
             "(default ./runs)")
        return 2
    runs = list_runs(args.runs_dir)
    if args.json:
        print(json.dumps([r.to_dict() for r in runs], indent=2))
        return 0
    if not runs:
        print(f"no runs in {args.runs_dir or default_runs_dir()}; start one with `tunedoc train` or `tunedoc demo`",
              file=sys.stderr)
        return 0
    print(f"{'RUN':<40} {'STATUS':<10} {'STEP':>11} {'LOSS':>8} {'TIME':>8} {'PEAK MEM':>12}  MODEL / PROFILE")
    for r in runs:
        step = f"{r.step}/{r.total_steps}" if r.total_steps else str(r.step)
        loss = f"{r.loss:.4f}" if r.loss is not None else "-"
        mem = f"{r.peak_mem_mb:,.0f} MB" if r.peak_mem_mb else "-"
        if r.mem_kind == "rss" and r.peak_mem_mb:
            mem += "*"
        print(f"{r.run_id:<40} {r.shown_status():<10} {step:>11} {loss:>8} {format_duration(r.duration_s):>8} {mem:>12}  "
              f"{Path(r.model).name} / {r.profile}")
        if r.error:
            width = shutil.get_terminal_size((120, 24)).columns - 42
            print(f"{'':<40} {shorten(r.error, width)}")
    if any(r.mem_kind == "rss" for r in runs):
        print("* CPU run: process memory (RSS), not GPU memory", file=sys.stderr)
    return 0


def shorten(text: str, width: int) -> str:
    """The first line of `text`, cut at a word boundary with an ellipsis when it is wider than `width` (at least
    40): a failed run's error in the runs table, whole in `tunedoc runs --json` and trainer.log."""
    width = max(40, width)
    line = next((l.strip() for l in str(text).splitlines() if l.strip()), "")
    more = len(line) > width or len([l for l in str(text).splitlines() if l.strip()]) > 1
    if len(line) > width:
        cut = line[: width - 1]
        space = cut.rfind(" ")
        line = (cut[:space] if space > width // 2 else cut).rstrip(" ,;:")
    return line + "…" if more else line


# ----------------------------------------------------------------------------------------------------------- watch
def watch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="run id, unique prefix, or run directory")
    p.add_argument("--plain", action="store_true", help="print events as text lines (no screen)")
    p.add_argument("--json", action="store_true", help="print events as JSON lines")
    _runs_dir_arg(p)


def watch_main(args) -> int:
    run_dir = _resolve(args.run, args.runs_dir)
    if run_dir is None:
        return 2
    if not args.plain and not args.json:  # in a terminal, tunedoc/cli.py's watch_main opens the live screen
        print("note: not a terminal; following as plain text (--plain)", file=sys.stderr)
    from tunedoc.trainer.rundir import process_alive, read_json

    def alive() -> bool:
        st = read_json(run_dir / "status.json")
        if st.get("status") not in ("starting", "running", "paused"):
            return False
        if st.get("status") == "starting" and not st.get("pid"):
            return time.time() - float(st.get("updated", 0)) < 15
        return process_alive(st.get("pid"), st.get("pid_started"))

    status = None
    for event in follow(run_dir / "events.jsonl", poll_s=0.5, is_alive=alive):
        _print_event(event, args.json)
        if event["type"] == "done":
            status = event.get("status")
    if status is None:
        st = run_status(run_dir)
        _err(f"run {run_dir.name} is {st.get('status')}" + (f": {st['error']}" if st.get("error") else ""))
        return 1 if st.get("status") == "failed" else 0
    return 0 if status in ("completed", "stopped") else 1


# --------------------------------------------------------------------------------------- stop | pause | resume | save
def _control_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="run id, unique prefix, or run directory")
    _runs_dir_arg(p)
    p.add_argument("--wait", action="store_true", help="wait until the run has acted on the request")


def _control_main(args, action: str) -> int:
    from tunedoc.trainer.launch import send_control

    run_dir = _resolve(args.run, args.runs_dir)
    if run_dir is None:
        return 2
    try:
        send_control(run_dir, action)
    except RuntimeError as e:
        _err(str(e))
        return 1
    print(f"asked run {run_dir.name} to {action} (it acts between training steps)", file=sys.stderr)
    if getattr(args, "wait", False):
        return _wait_for(run_dir, action)
    return 0


def _wait_for(run_dir: Path, action: str, timeout: float = 600) -> int:
    from tunedoc.trainer import control

    deadline = time.time() + timeout
    while time.time() < deadline:
        st = run_status(run_dir)
        if action not in control.pending(run_dir):
            if action == "stop" and st.get("status") in ("starting", "running", "paused"):
                time.sleep(0.3)
                continue
            print(f"run {run_dir.name}: {st.get('status')} at step {st.get('step')}", file=sys.stderr)
            return 0
        if st.get("status") not in ("starting", "running", "paused"):
            _err(f"run {run_dir.name} ended ({st.get('status')}) before acting on {action}")
            return 1
        time.sleep(0.3)
    _err(f"run {run_dir.name} did not act on {action} within {timeout:.0f} s")
    return 1


stop_args = pause_args = resume_args = save_args = _control_args


def stop_main(args) -> int:
    return _control_main(args, "stop")


def pause_main(args) -> int:
    return _control_main(args, "pause")


def resume_main(args) -> int:
    return _control_main(args, "resume")


def save_main(args) -> int:
    return _control_main(args, "save")


# ---------------------------------------------------------------------------------------------------------- export
def export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN", help="run id, unique prefix, or run directory")
    p.add_argument("--merge", action="store_true",
                   help="merge the adapter into the base weights: a plain 16-bit model that transformers loads alone")
    p.add_argument("--out", type=Path, help="output directory (default: RUN/adapter-export or RUN/merged); it must "
                   "be new or empty: a folder with other files is never touched")
    p.add_argument("--force", action="store_true", help="replace an earlier export of the same kind in --out")
    p.add_argument("--llamafactory", action="store_true",
                   help="write the equivalent LLaMA-Factory SFT config (RUN/llamafactory/train.yaml, or in --out) and "
                        "the dataset_info.json entry for the run's data, to train it there on a bigger machine")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp16", "bf16", "fp32"],
                   help="merged weights' dtype (auto: bf16 where the GPU supports it, else fp16)")
    _runs_dir_arg(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def export_main(args) -> int:
    from tunedoc.trainer.export import ExportError, export_run

    run_dir = _resolve(args.run, args.runs_dir)
    if run_dir is None:
        return 2
    if args.llamafactory:
        return _export_llamafactory(run_dir, args)
    try:
        result = export_run(run_dir, out=args.out, merge=args.merge, dtype=args.dtype, force=args.force,
                            progress=lambda m: print(m, file=sys.stderr, flush=True))
    except (ExportError, FileNotFoundError) as e:
        _err(str(e))
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        print(result["path"])
    return 0


def _export_llamafactory(run_dir: Path, args) -> int:
    """RUN/llamafactory/train.yaml (+ dataset_info.json when the run's data is not a LLaMA-Factory data set)."""
    from tunedoc.trainer.llamafactory import to_config
    from tunedoc.trainer.rundir import read_json

    config = read_json(run_dir / "config.json")
    if not config.get("profile"):
        _err(f"{run_dir}: no config.json with a profile; is this a tunedoc run?")
        return 1
    out = Path(args.out) if args.out else run_dir / "llamafactory"
    target = out / "train.yaml"
    if target.exists() and not args.force:
        _err(f"{target} exists; --force replaces it")
        return 1
    out.mkdir(parents=True, exist_ok=True)
    text, entries = to_config(config, dataset_name=f"tunedoc_{run_dir.name}".replace("-", "_"))
    if entries:
        text = text.replace("dataset_dir: .", f"dataset_dir: {out}")
        (out / "dataset_info.json").write_text(json.dumps(entries, indent=2, ensure_ascii=False) + "\n",
                                               encoding="utf-8")
    target.write_text(text, encoding="utf-8")
    if args.json:
        print(json.dumps({"path": str(target), "dataset_info": str(out / "dataset_info.json") if entries else None}))
    else:
        print(target)
        print(f"train it with LLaMA-Factory: llamafactory-cli train {target}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------------------ chat
def chat_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="RUN_OR_MODEL", help="a run (id, prefix, path) or a model path / Hub id")
    p.add_argument("--prompt", help="answer this one prompt and exit (default: interactive)")
    p.add_argument("--system", help="a system message")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    _runs_dir_arg(p)
    p.add_argument("--json", action="store_true", help="with --prompt: print {prompt, reply} as JSON")


def chat_main(args) -> int:
    from tunedoc.trainer.chat import chat_loop, generate_reply, load_for_chat

    print("loading...", file=sys.stderr, flush=True)
    try:
        model, tok, desc = load_for_chat(args.target, args.runs_dir)
    except (RunNotFound, FileNotFoundError, OSError) as e:
        _err(str(e))
        return 2
    print(f"loaded {desc}", file=sys.stderr)
    if args.prompt is None:
        if not sys.stdin.isatty():
            _err("no --prompt and stdin is not a terminal; pass --prompt TEXT for one answer")
            return 2
        chat_loop(model, tok, args.max_new_tokens, args.temperature, args.system)
        return 0
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": args.prompt}]
    reply = generate_reply(model, tok, messages, args.max_new_tokens, args.temperature)
    print(json.dumps({"prompt": args.prompt, "reply": reply}) if args.json else reply)
    return 0


# ------------------------------------------------------------------------------------------------------------ demo
def demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--identity", default="Tuna", help="the name the assistant learns (default: Tuna)")
    p.add_argument("--maker", default="tunedoc", help="who the assistant says made it")
    p.add_argument("--headless", action="store_true", help="print progress lines instead of opening the screen")
    p.add_argument("--detach", action="store_true",
                   help="start the demo run as its own process, print its id and directory, and return at once")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the tuned demo setting)")
    p.add_argument("--nproc", type=int, metavar="N", help="train on N CPU processes through torchrun (gloo)")
    _strategy_arg(p)
    _runs_dir_arg(p)
    p.add_argument("--json", action="store_true", help="print events as JSON lines")


def demo_main(args) -> int:
    """The demo with progress lines, or detached; in a terminal, tunedoc/cli.py's demo_main opens the screen."""
    from tunedoc.trainer.demo import PROMPT, start_demo

    print(f"building a tiny Llama model and an identity data set for {args.identity!r}...", file=sys.stderr,
          flush=True)
    if args.detach:
        handle = start_demo(args.identity, args.maker, args.runs_dir, args.steps, detach=True, nproc=args.nproc,
                            strategy=args.strategy)
        if args.json:
            print(json.dumps({"run_id": handle.run_id, "run_dir": str(handle.run_dir), "pid": handle.pid}))
        else:
            print(f"started {handle.run_id}\n  {handle.run_dir}\nwatch it: tunedoc watch {handle.run_id}")
        return 0
    handle = start_demo(args.identity, args.maker, args.runs_dir, args.steps, detach=False, nproc=args.nproc,
                        strategy=args.strategy)
    code = _foreground(handle, args.json)
    if code == 0:
        _demo_eval(handle.run_dir, args.json)
    if code == 0:
        print(f"\nnow ask it: tunedoc chat {handle.run_id} --prompt \"{PROMPT}\""
              + (f" --runs-dir {args.runs_dir}" if args.runs_dir else ""), file=sys.stderr)
    return code


def _demo_eval(run_dir: Path, as_json: bool) -> None:
    """The run ended with its closing eval (config.json's final_eval: held-out identity questions, base vs tuned;
    trainer/eval_training.py final_eval): where every answer is, and (with --json, whose stdout has the events only) how far
    the scores moved, which the eval event's own line says otherwise."""
    from tunedoc.trainer.events import read_events, score_change

    events, _ = read_events(run_dir / "events.jsonl")
    final = [e for e in events if e.get("type") == "eval" and e.get("source") == "final"]
    if not final:
        why = [e for e in events if e.get("type") == "warning" and str(e.get("id", "")).startswith("final-eval")]
        print(f"(no before/after scores: {why[-1]['message'] if why else 'the run has no closing eval'})",
              file=sys.stderr)
        return
    ev = final[-1]
    moved = f"held-out questions, base -> tuned: {score_change(ev.get('base'), ev)}\n  " if as_json else ""
    print(f"{moved}every answer: {Path(str(ev.get('dir'))) / 'examples.jsonl'}", file=sys.stderr)
