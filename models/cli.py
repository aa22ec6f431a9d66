"""`tunedoc models`, `tunedoc download`, `tunedoc login`: the headless twin of the Models screen.

stdout carries the data (tables, or JSON with --json); progress and diagnostics go to stderr.
Exit codes: 0 done, 1 a Hub/disk/network error (the message says the fix), 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from tunedoc.models.errors import HubError
from tunedoc.models.fmt import human_bytes, human_count, human_duration


def _fail(e: HubError, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"type": "error", **e.to_dict()}), flush=True)
    print(f"tunedoc: {e.message}", file=sys.stderr)
    if e.hint:
        print(f"  fix: {e.hint}", file=sys.stderr)
    if e.kind == "cancelled":
        return 130
    return 2 if e.kind == "bad_input" else 1


def _ago(ts: float | None) -> str:
    if not ts:
        return "-"
    s = max(0, time.time() - ts)
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{int(s // n)}{unit} ago"
    return "just now"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), *(line(r) for r in rows)])


# -- tunedoc models ---------------------------------------------------------------------------------------------

def models_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--dir", action="append", default=[], metavar="DIR",
                        help="also list models in DIR (another HF cache or a folder of model folders); repeatable")
    sub = parser.add_subparsers(dest="action", metavar="{search,info,rm}")
    s = sub.add_parser("search", help="search models on the Hub (or the HF_ENDPOINT mirror)")
    s.add_argument("query")
    s.add_argument("--limit", type=int, default=20)
    i = sub.add_parser("info", help="a model's files, size, license, gating, and whether it fits this GPU")
    i.add_argument("repo")
    i.add_argument("--revision")
    r = sub.add_parser("rm", help="delete a model (or one revision) from the cache, after a confirmation")
    r.add_argument("repo")
    r.add_argument("--revision", help="delete only this revision (commit or branch name)")
    r.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    for p in (s, i, r):
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
        _source_arg(p)


def _source_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", choices=("hf", "modelscope"), default="hf",
                   help="hf: the Hugging Face Hub or the HF_ENDPOINT mirror (default); modelscope: ModelScope, "
                        "through the modelscope library (pip install 'tunedoc[modelscope]'; a modelscope:// prefix "
                        "on the id does the same)")


def _modelscope(args) -> bool:
    repo = getattr(args, "repo", "") or ""
    return getattr(args, "source", "hf") == "modelscope" or repo.startswith("modelscope://")


def models_main(args) -> int:
    action = getattr(args, "action", None)
    try:
        if action in ("search", "info", "rm") and _modelscope(args):
            return _ms_models(args, action)
        if action == "search":
            return _search(args)
        if action == "info":
            return _info(args)
        if action == "rm":
            return _rm(args)
        return _list(args)
    except HubError as e:
        return _fail(e, args.json)


def _list(args) -> int:
    from tunedoc.models.cache import list_cache
    from tunedoc.models.hub import cache_dir

    from tunedoc.models import modelscope as ms

    models = list_cache(extra_dirs=args.dir)
    ms_models = ms.list_cache()
    if args.json:
        print(json.dumps({"cache_dir": str(cache_dir()), "models": [m.to_dict() for m in models],
                          "modelscope": {"cache_dir": str(ms.cache_dir()), "models": [m.to_dict() for m in ms_models]}},
                         indent=2))
        return 0
    if not models and ms_models:
        print(f"no models in {cache_dir()}", file=sys.stderr)
    elif not models:
        print(f"no models in {cache_dir()}" + (f" or {', '.join(args.dir)}" if args.dir else ""), file=sys.stderr)
        print("  download one with `tunedoc download OWNER/NAME` (find it with `tunedoc models search NAME`)",
              file=sys.stderr)
        return 0
    rows = []
    for m in models:
        revs = ", ".join(",".join(r.refs) or r.commit[:8] for r in m.revisions) or "-"
        note = f"+{human_bytes(m.incomplete_bytes)} partial (resume: tunedoc download {m.repo})" \
            if m.incomplete_bytes else ""
        rows.append([m.repo, "hf", human_bytes(m.size), revs, _ago(m.last_used), note or m.path])
    for m in ms_models:
        note = f"+{human_bytes(m.incomplete_bytes)} partial (resume: tunedoc download {m.repo} --source " \
               "modelscope)" if m.incomplete_bytes else ""
        rows.append([m.repo, "modelscope", human_bytes(m.size), ", ".join(m.revisions), _ago(m.last_used),
                     note or m.path])
    print(_table(rows, ["MODEL", "SOURCE", "SIZE", "REVISIONS", "LAST USED", "PATH"]))
    total = sum(m.size for m in models)
    if models:
        print(f"{len(models)} models, {human_bytes(total)} in {cache_dir()}", file=sys.stderr)
    if ms_models:
        print(f"{len(ms_models)} models, {human_bytes(sum(m.size for m in ms_models))} in {ms.cache_dir()} "
              "(ModelScope)", file=sys.stderr)
    return 0


def _ms_models(args, action: str) -> int:
    """search | info | rm on ModelScope."""
    from tunedoc.models import modelscope as ms

    if action == "search":
        hits = ms.search(args.query, limit=args.limit)
        if args.json:
            print(json.dumps({"endpoint": ms.endpoint(), "source": "modelscope", "query": args.query,
                              "results": [h.to_dict() for h in hits]}, indent=2))
        elif not hits:
            print(f"no models match {args.query!r} on ModelScope ({ms.endpoint()})", file=sys.stderr)
        else:
            print(_table([[h.id, human_bytes(h.size_bytes) if h.size_bytes else "?", human_count(h.downloads),
                           h.license or "?"] for h in hits], ["MODEL", "SIZE", "DOWNLOADS", "LICENSE"]))
            print(f"{len(hits)} results from ModelScope ({ms.endpoint()})", file=sys.stderr)
        return 0
    if action == "info":
        mi = ms.info(args.repo, args.revision)
        if args.json:
            print(json.dumps(mi.to_dict(), indent=2))
            return 0
        print(f"{mi.repo} @ {mi.revision} (ModelScope, {mi.endpoint})")
        print(f"  license {mi.license or '?'}   downloads {human_count(mi.downloads)}   likes {human_count(mi.likes)}")
        print("  files:")
        for f in sorted(mi.files, key=lambda f: f.name):
            print(f"    {f.name:<48} {human_bytes(f.size):>10}")
        print(f"  download: {len(mi.files)} files, {human_bytes(mi.total_size)}")
        return 0
    repo, _ = ms.strip_prefix(args.repo)
    hit = next((m for m in ms.list_cache() if m.repo == repo), None)
    if hit is None:
        raise HubError("not_found", f"{repo} is not in the ModelScope cache ({ms.cache_dir()})",
                       "see what is there with `tunedoc models`")
    if not args.yes:
        if not sys.stdin.isatty():
            raise HubError("bad_input", f"refusing to delete {repo} ({human_bytes(hit.size)}) without confirmation",
                           "add --yes to delete without asking")
        if input(f"delete {repo}: {human_bytes(hit.size)} in {hit.path}? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return 1
    freed = ms.remove(repo)
    if args.json:
        print(json.dumps({"repo": repo, "source": "modelscope", "freed_bytes": freed}))
    else:
        print(f"deleted {repo} (ModelScope): {human_bytes(freed)} freed")
    return 0


def _search(args) -> int:
    from tunedoc.models.hub import endpoint, search

    if args.limit < 1:
        raise HubError("bad_input", f"--limit {args.limit}: must be at least 1", "")
    hits = search(args.query, limit=args.limit)
    if args.json:
        print(json.dumps({"endpoint": endpoint(), "query": args.query, "results": [h.to_dict() for h in hits]},
                         indent=2))
        return 0
    if not hits:
        print(f"no models match {args.query!r} on {endpoint()}", file=sys.stderr)
        return 0
    rows = []
    for h in hits:
        est = {True: "yes", False: "no", None: "?"}[h.supported]
        gated = "-" if not h.gated else str(h.gated)
        rows.append([h.id, human_bytes(h.size_bytes) if h.size_bytes else "?", human_count(h.downloads),
                     h.license or "?", gated, f"{h.model_type or '?'} ({est})"])
    print(_table(rows, ["MODEL", "SIZE", "DOWNLOADS", "LICENSE", "GATED", "ARCH (estimator knows it)"]))
    print(f"{len(hits)} results from {endpoint()}", file=sys.stderr)
    return 0


def _info(args) -> int:
    from tunedoc.models.download import select_files
    from tunedoc.models.hub import info

    mi = info(args.repo, args.revision)
    chosen, skipped = select_files(mi.files)
    chosen_names = {f.name for f in chosen}
    fit = _fit_summary(mi)
    if args.json:
        d = mi.to_dict()
        d["download"] = {"files": sorted(chosen_names), "bytes": sum(f.size or 0 for f in chosen),
                         "skipped": skipped}
        d["fit"] = fit
        print(json.dumps(d, indent=2))
        return 0
    print(f"{mi.repo} @ {mi.sha[:12]} ({mi.endpoint})")
    print(f"  license {mi.license or '?'}   gated {mi.gated or 'no'}   downloads {human_count(mi.downloads)}"
          f"   likes {human_count(mi.likes)}")
    arch = mi.model_type or "?"
    known = {True: "the estimator knows it", False: "not supported by the estimator", None: "unknown"}[mi.supported]
    print(f"  architecture {arch} ({known})" + (f", {human_count(mi.params)} parameters" if mi.params else ""))
    print("  files:")
    for f in sorted(mi.files, key=lambda f: f.name):
        mark = "  " if f.name in chosen_names else "- "
        print(f"    {mark}{f.name:<48} {human_bytes(f.size):>10}")
    print(f"  download: {len(chosen)} files, {human_bytes(sum(f.size or 0 for f in chosen))}"
          f" (of {human_bytes(mi.total_size)}; '-' files are skipped: "
          f"{'safetensors preferred' if skipped else 'none'})")
    if fit:
        print(f"  fit: {fit.get('summary') or fit.get('error')}")
    if mi.gated:
        print(f"  gated: accept the license at {mi.endpoint}/{mi.repo}, then `tunedoc login` or set HF_TOKEN",
              file=sys.stderr)
    return 0


def _fit_summary(mi) -> dict | None:
    """Which built-in profiles fit this machine's GPU, when profiles.fit and a GPU are there."""
    try:
        from tunedoc.profiles.cli import _probed_gpu
        from tunedoc.profiles.fit import fit
    except ImportError:
        return None
    try:
        from tunedoc.models.hub import fetch_json

        config = fetch_json(mi.repo, "config.json", mi.sha, endpoint_url=mi.endpoint)
        gpu, vram, err = _probed_gpu()
        if err:
            return {"error": err}
        results = fit(config, vram, gpu=gpu)
    except HubError as e:
        return {"error": f"no config.json ({e.message})"}
    except Exception as e:  # noqa: BLE001 - the fit is a bonus; never fail `info` over it
        return {"error": f"{type(e).__name__}: {e}"}
    fits = [r for r in results if r.fits]
    summary = (f"on {gpu} ({vram:.1f} GiB free): " + ", ".join(f"{r.profile.name} {r.estimate.total_gb:.1f} GiB"
                                                                for r in fits)) if fits \
        else f"nothing fits {gpu} ({vram:.1f} GiB free) as is; see `tunedoc fit {mi.repo}`"
    return {"gpu": gpu, "vram_gb": vram, "summary": summary, "results": [r.to_dict() for r in results]}


def _rm(args) -> int:
    from tunedoc.models.cache import find, remove

    m = find(args.repo)
    if m is None:
        raise HubError("not_found", f"{args.repo} is not in the cache", "see what is there with `tunedoc models`")
    if args.revision:
        rev = next((r for r in m.revisions if args.revision in (r.commit, *r.refs) or
                    (len(args.revision) >= 7 and r.commit.startswith(args.revision))), None)
        what = f"{args.repo} revision {args.revision}" + (f" ({human_bytes(rev.size)} at most)" if rev else "")
    else:
        what = f"{args.repo}: {human_bytes(m.size + m.incomplete_bytes)} in {m.path}"
    if not args.yes:
        if not sys.stdin.isatty():
            raise HubError("bad_input", f"refusing to delete {what} without confirmation",
                           "add --yes to delete without asking")
        answer = input(f"delete {what}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return 1
    freed = remove(args.repo, args.revision)
    if args.json:
        print(json.dumps({"repo": args.repo, "revision": args.revision, "freed_bytes": freed}))
    else:
        print(f"deleted {args.repo}{' @ ' + args.revision if args.revision else ''}: {human_bytes(freed)} freed")
    return 0


# -- tunedoc download -------------------------------------------------------------------------------------------

def download_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repo", help="model id, e.g. Qwen/Qwen2.5-0.5B")
    parser.add_argument("--revision", help="branch, tag or commit (default: main)")
    parser.add_argument("--include", action="append", metavar="GLOB",
                        help="only files matching GLOB (repeatable, or comma-separated); turns off the "
                             "safetensors-over-.bin choice, e.g. --include '*.bin'")
    parser.add_argument("--exclude", action="append", metavar="GLOB", help="skip files matching GLOB")
    parser.add_argument("--endpoint", metavar="URL", help="Hub or mirror URL (default: $HF_ENDPOINT or "
                        "https://huggingface.co), e.g. https://hf-mirror.com")
    parser.add_argument("--cache-dir", metavar="DIR", help="cache to download into (default: $HF_HUB_CACHE)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be fetched and the disk check")
    parser.add_argument("--json", action="store_true", help="JSON lines on stdout: plan, progress, done/error")
    _source_arg(parser)


def _ms_download(args) -> int:
    """download --source modelscope: the disk check, then the library's snapshot_download (which resumes)."""
    from tunedoc.models import modelscope as ms

    as_json = args.json
    try:
        p = ms.plan(ms.strip_prefix(args.repo)[0], args.revision, args.cache_dir)
    except HubError as e:
        return _fail(e, as_json)
    if as_json:
        print(json.dumps({"type": "plan", **p.to_dict()}), flush=True)
    else:
        free = "?" if p.free_bytes is None else human_bytes(p.free_bytes)
        print(f"{p.repo} @ {p.revision} from ModelScope ({p.endpoint})\n  {p.files} files, "
              f"{human_bytes(p.total_bytes)}" + (f" ({human_bytes(p.present_bytes)} already here)" if p.present_bytes
                                                 else "") + f"\n  into {p.cache_dir} ({free} free)", file=sys.stderr)
    if args.dry_run:
        return 0 if p.fits else 1
    t0 = time.monotonic()
    view = _JsonProgress(source="modelscope") if as_json else _RichProgress(p)
    view.start()
    try:
        path = ms.download(p.repo, args.revision, args.cache_dir, the_plan=p, on_progress=view.update)
    except HubError as e:
        return _fail(e, as_json)
    finally:
        view.stop()
    secs = time.monotonic() - t0
    if as_json:
        print(json.dumps({"type": "done", "repo": p.repo, "source": "modelscope", "path": str(path),
                          "files": p.files, "total_bytes": p.total_bytes, "downloaded_bytes": p.needed_bytes,
                          "seconds": round(secs, 3)}), flush=True)
    else:
        print(f"done: {p.repo} ({human_bytes(p.total_bytes)}, {p.files} files, sha256-checked by the modelscope "
              f"library) in {human_duration(secs)}", file=sys.stderr)
        print(path)
    return 0


def download_main(args) -> int:
    from tunedoc.models.download import download, plan

    if _modelscope(args):
        return _ms_download(args)
    as_json = args.json
    try:
        p = plan(args.repo, args.revision, args.include, args.exclude, endpoint_url=args.endpoint,
                 cache=args.cache_dir)
    except HubError as e:
        return _fail(e, as_json)
    if as_json:
        print(json.dumps({"type": "plan", **p.to_dict()}), flush=True)
    else:
        _print_plan(p)
    if args.dry_run:
        return 0 if p.fits else 1

    cancel = threading.Event()
    outcome: dict = {}
    view = _JsonProgress() if as_json else _RichProgress(p)

    def run() -> None:
        try:
            outcome["path"] = download(args.repo, args.revision, args.include, args.exclude,
                                       endpoint=args.endpoint, on_progress=view.update, cancel=cancel,
                                       cache=args.cache_dir, the_plan=p)
        except HubError as e:
            outcome["error"] = e
        except Exception as e:  # noqa: BLE001
            from tunedoc.models.errors import translate

            outcome["error"] = translate(e, repo=args.repo, endpoint=p.endpoint, revision=args.revision)

    old = signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    t0 = time.monotonic()
    worker = threading.Thread(target=run, name="tunedoc-download", daemon=True)
    view.start()
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        cancel.set()
        worker.join(30)
    finally:
        view.stop()
        signal.signal(signal.SIGTERM, old)
    secs = time.monotonic() - t0
    if "error" in outcome:
        return _fail(outcome["error"], as_json)
    if "path" not in outcome:
        return _fail(HubError("cancelled", "download interrupted", f"run `tunedoc download {args.repo}` to resume"),
                     as_json)
    fetched = p.needed_bytes
    result = {"type": "done", "repo": p.repo, "sha": p.sha, "path": str(outcome["path"]), "files": len(p.files),
              "total_bytes": p.total_bytes, "downloaded_bytes": fetched, "seconds": round(secs, 3)}
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        speed = f" at {human_bytes(fetched / secs)}/s" if fetched and secs > 0 else ""
        print(f"done: {p.repo} ({human_bytes(p.total_bytes)}, {len(p.files)} files, verified) "
              f"in {human_duration(secs)}{speed}", file=sys.stderr)
        print(outcome["path"])
    return 0


def _print_plan(p) -> None:
    err = sys.stderr
    print(f"{p.repo} @ {p.sha[:12]} from {p.endpoint}", file=err)
    print(f"  {len(p.files)} files, {human_bytes(p.total_bytes)}"
          + (f" ({human_bytes(p.present_bytes)} already here, {human_bytes(p.needed_bytes)} to fetch)"
             if p.present_bytes else ""), file=err)
    for s in p.skipped:
        print(f"  skip {s}", file=err)
    free = "?" if p.free_bytes is None else human_bytes(p.free_bytes)
    print(f"  into {p.cache_dir} ({free} free)", file=err)


class _JsonProgress:
    """Progress as JSON lines on stdout: at most twice a second, and each file's end."""

    def __init__(self, **extra) -> None:
        self.last = 0.0
        self.lock = threading.Lock()
        self.extra = extra  # e.g. source="modelscope"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def update(self, pr) -> None:
        now = time.monotonic()
        final = pr.file_done == pr.file_total
        if not final and now - self.last < 0.5:
            return
        self.last = now
        print(json.dumps({"type": "progress", **self.extra, **pr.to_dict()}), flush=True)


class _RichProgress:
    """A total bar and one bar per file in flight, on stderr."""

    def __init__(self, p) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("{task.description}", justify="left"), BarColumn(),
                                 DownloadColumn(), TextColumn("{task.fields[rate]}"),
                                 console=Console(stderr=True), transient=False, refresh_per_second=8)
        self.total = self.progress.add_task("total", total=p.total_bytes, completed=p.present_bytes, rate="")
        self.tasks: dict[str, int] = {}

    def start(self) -> None:
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()

    def update(self, pr) -> None:
        eta = human_duration(pr.eta_s) if pr.eta_s is not None else "?"
        self.progress.update(self.total, completed=pr.done,
                             description=f"total {pr.files_done}/{pr.files_total} files",
                             rate=f"{human_bytes(pr.speed_bps)}/s  eta {eta}")
        if pr.file_done >= pr.file_total:
            tid = self.tasks.pop(pr.file, None)
            if tid is not None:
                self.progress.remove_task(tid)
            return
        tid = self.tasks.get(pr.file)
        if tid is None:
            name = pr.file if len(pr.file) <= 40 else "…" + pr.file[-39:]
            tid = self.tasks[pr.file] = self.progress.add_task(f"  {name}", total=pr.file_total, rate="")
        self.progress.update(tid, completed=pr.file_done)


# -- tunedoc login ----------------------------------------------------------------------------------------------

def login_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token", help="the token (default: prompt without echo; prefer the prompt, a token on "
                        "the command line lands in shell history)")
    parser.add_argument("--endpoint", metavar="URL", help="Hub to check the token against (default: $HF_ENDPOINT)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON (never the token)")


def login_main(args) -> int:
    from tunedoc.models.auth import login

    token = args.token
    if not token:
        if not sys.stdin.isatty():
            token = sys.stdin.readline().strip()
        else:
            import getpass

            print("Paste a token from https://huggingface.co/settings/tokens (input is hidden).", file=sys.stderr)
            token = getpass.getpass("token: ")
    try:
        res = login(token, args.endpoint)
    except HubError as e:
        return _fail(e, args.json)
    if args.json:
        print(json.dumps({"username": res.username, "token_name": res.token_name, "token_path": res.token_path,
                          "validated": res.validated, "env_overrides": res.env_overrides}))
    else:
        who = f" as {res.username}" if res.username else " (the endpoint could not check it)"
        print(f"logged in{who}; token saved to {res.token_path}", file=sys.stderr)
    if res.env_overrides:
        print("note: HF_TOKEN is set in this environment and takes precedence over the saved token",
              file=sys.stderr)
    return 0
