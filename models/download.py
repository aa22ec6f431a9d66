"""Download a model into the Hugging Face cache: disk check first, safetensors preferred, progress, resume, verify.

The cache layout is huggingface_hub's own (`models--org--name/{blobs,snapshots,refs}`), so transformers,
`hf` and `tunedoc models` all see what we fetch. huggingface_hub 2.4 gives each download a process-unique
temporary file and deletes it on failure, so an interrupted multi-GB download starts over; here the partial
blob is kept as `blobs/<etag>.incomplete` and the next run asks only for the rest (HTTP Range). A file becomes
a blob only after its size, and its sha256 for LFS files, match what the Hub published.

`download()` runs in the caller's thread and fetches files in parallel; `on_progress` is called at most ~10
times a second (and at each file's end), never from two threads at once.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tunedoc.models.errors import HubError, disk_full_error, translate
from tunedoc.models.hub import RepoFileEntry, cache_dir, endpoint, info, resolve_token

# Weight formats other than safetensors: skipped when the repo has safetensors (override with --include).
OTHER_WEIGHTS = (".bin", ".pt", ".pth", ".msgpack", ".h5", ".onnx", ".ckpt", ".gguf", ".ot")
DISK_RESERVE = 64 * 1024 * 1024  # keep this much free after the download
MAX_WORKERS = 8
_RETRIES = 5  # consecutive failed attempts without new bytes before giving up on a file


@dataclass
class Progress:
    file: str  # the file this update is about
    file_done: int
    file_total: int
    done: int  # bytes present for the whole download (already-present bytes included)
    total: int
    speed_bps: float  # bytes per second received over the last few seconds
    eta_s: float | None
    files_done: int
    files_total: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PlannedFile:
    name: str
    size: int
    sha256: str | None
    etag: str
    present: int = 0  # bytes already on disk (complete blob, or a partial .incomplete to resume)
    complete: bool = False


@dataclass
class DownloadPlan:
    repo: str
    revision: str | None
    sha: str
    endpoint: str
    cache_dir: Path
    files: list[PlannedFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files left out, and why ("pytorch_model.bin: ...")
    free_bytes: int | None = None

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def present_bytes(self) -> int:
        return sum(f.present for f in self.files)

    @property
    def needed_bytes(self) -> int:
        return self.total_bytes - self.present_bytes

    @property
    def fits(self) -> bool:
        return self.free_bytes is None or self.needed_bytes + DISK_RESERVE <= self.free_bytes

    @property
    def storage(self) -> Path:
        return self.cache_dir / ("models--" + self.repo.replace("/", "--"))

    def to_dict(self) -> dict:
        return {"repo": self.repo, "revision": self.revision, "sha": self.sha, "endpoint": self.endpoint,
                "cache_dir": str(self.cache_dir), "files": [asdict(f) for f in self.files], "skipped": self.skipped,
                "total_bytes": self.total_bytes, "present_bytes": self.present_bytes,
                "needed_bytes": self.needed_bytes, "free_bytes": self.free_bytes, "fits": self.fits}


def select_files(files: list[RepoFileEntry], include=None, exclude=None) -> tuple[list[RepoFileEntry], list[str]]:
    """The files to fetch and the reasons others are left out. Globs as in `hf download` (fnmatch)."""
    from huggingface_hub.utils import filter_repo_objects

    include, exclude = _globs(include), _globs(exclude)
    chosen = list(filter_repo_objects(files, allow_patterns=include, ignore_patterns=exclude, key=lambda f: f.name))
    names = {f.name for f in chosen}
    skipped = [f"{f.name}: excluded by --include/--exclude" for f in files if f.name not in names]
    if include is None:  # no explicit choice: one weight format only
        has_st = any(f.name.endswith(".safetensors") for f in chosen)
        has_pt = any(f.name.endswith((".bin", ".pt", ".pth")) for f in chosen)
        drop = OTHER_WEIGHTS if has_st else (tuple(s for s in OTHER_WEIGHTS if s not in (".bin", ".pt", ".pth"))
                                            if has_pt else ())
        why = "safetensors present" if has_st else "PyTorch weights present"
        keep = []
        for f in chosen:
            if drop and f.name.endswith(drop):
                skipped.append(f"{f.name}: {why} (add --include '{f.name}' to fetch it)")
            else:
                keep.append(f)
        chosen = keep
    return chosen, skipped


def plan(repo, revision=None, include=None, exclude=None, endpoint_url=None, token=None,
         cache=None) -> DownloadPlan:
    """What a download would fetch: files (safetensors preferred over .bin), bytes needed, free disk, fits."""
    mi = info(repo, revision, token=token, endpoint_url=endpoint_url)
    chosen, skipped = select_files(mi.files, include, exclude)
    if not chosen:
        raise HubError("bad_input", f"no file of {mi.repo} matches --include {include} / --exclude {exclude}",
                       f"see the files with `tunedoc models info {mi.repo}`")
    p = DownloadPlan(repo=mi.repo, revision=revision, sha=mi.sha, endpoint=mi.endpoint,
                     cache_dir=Path(cache) if cache else cache_dir(), skipped=skipped)
    for f in sorted(chosen, key=lambda f: -(f.size or 0)):
        if f.size is None or not f.etag:
            raise HubError("server", f"{mi.endpoint} gave no size or hash for {f.name}",
                           "the endpoint is not fully Hub-compatible; try another HF_ENDPOINT")
        pf = PlannedFile(f.name, f.size, f.sha256, f.etag)
        blob = p.storage / "blobs" / pf.etag
        if _size(blob) == pf.size:
            pf.present, pf.complete = pf.size, True
        else:
            pf.present = min(_size(_incomplete(blob)) or 0, pf.size)
        p.files.append(pf)
    p.free_bytes = free_bytes(p.cache_dir)
    if mi.gated and not all(f.complete for f in p.files):
        _check_access(p, p.files[-1].name, token)  # fail before any progress bar, not in the middle
    return p


def _check_access(p: DownloadPlan, filename: str, token: str | None) -> None:
    """A HEAD on one file: a gated repo answers 401/403 here when the token has no access."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    tok = resolve_token(token)
    try:
        r = get_session().head(hf_hub_url(p.repo, filename, revision=p.sha, endpoint=p.endpoint),
                               headers=build_hf_headers(token=tok or False, library_name="tunedoc"),
                               follow_redirects=False, timeout=30)
        hf_raise_for_status(r)
    except Exception as e:  # noqa: BLE001
        raise translate(e, repo=p.repo, endpoint=p.endpoint, revision=p.revision, has_token=bool(tok)) from e


def download(repo, revision=None, include=None, exclude=None, endpoint=None, token=None,
             on_progress: Callable[[Progress], None] | None = None, cancel: threading.Event | None = None,
             cache=None, the_plan: DownloadPlan | None = None) -> Path:
    """Fetch the planned files into the cache and return the snapshot folder (what from_pretrained takes).

    Raises HubError: disk (refused before starting, or full mid-way), gated, not_found, network, corrupt,
    cancelled. Partial files stay as .incomplete and the next call resumes them.
    """
    p = the_plan or plan(repo, revision, include, exclude, endpoint_url=endpoint, token=token, cache=cache)
    if not p.fits:
        raise HubError(
            "disk",
            f"not enough disk space for {p.repo}: needs {_gb(p.needed_bytes)} more "
            f"({_gb(p.total_bytes)} in {len(p.files)} files, {_gb(p.present_bytes)} already here), "
            f"but {p.cache_dir} has {_gb(p.free_bytes or 0)} free",
            "free space (`tunedoc models` lists the cache, `tunedoc models rm REPO` frees it), point HF_HUB_CACHE "
            "at a bigger disk, or fetch fewer files with --include/--exclude")
    tok = resolve_token(token)
    _file_mode()  # read the umask here, once, before any worker thread
    snapshot = p.storage / "snapshots" / p.sha
    snapshot.mkdir(parents=True, exist_ok=True)
    (p.storage / "blobs").mkdir(parents=True, exist_ok=True)
    if revision and revision != p.sha:
        _write_ref(p.storage, revision, p.sha)
    elif not revision:
        _write_ref(p.storage, "main", p.sha)

    tracker = _Tracker(p, on_progress)
    stop = threading.Event()
    if cancel is not None:
        threading.Thread(target=_forward, args=(cancel, stop), daemon=True).start()
    errors: list[BaseException] = []

    def job(pf: PlannedFile) -> None:
        if stop.is_set():
            return
        try:
            _fetch(p, pf, tok, tracker, stop, cancel)
        except BaseException as e:  # noqa: BLE001 - the first error stops the other files
            errors.append(e)
            stop.set()

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(MAX_WORKERS, len(p.files))),
                                thread_name_prefix="tunedoc-dl") as pool:
            list(pool.map(job, p.files))
    finally:
        stop.set()  # ends the cancel forwarder
    if errors:
        real = [e for e in errors if not isinstance(e, _Stopped)] or errors
        first = next((e for e in real if not (isinstance(e, HubError) and e.kind == "cancelled")), real[0])
        raise translate(first, repo=p.repo, endpoint=p.endpoint, revision=revision, has_token=bool(tok)) from first
    if cancel is not None and cancel.is_set():
        raise _cancelled(p)
    for pf in p.files:  # verify what the snapshot now holds
        got = _size(snapshot / pf.name)
        if got != pf.size:
            raise HubError("corrupt", f"{pf.name} is {got} bytes in the cache, expected {pf.size}",
                           f"run `tunedoc models rm {p.repo}` and download again")
    tracker.finish()
    return snapshot


# -- one file --------------------------------------------------------------------------------------------------

def _fetch(p: DownloadPlan, pf: PlannedFile, token: str | None, tracker: _Tracker, stop: threading.Event,
           cancel: threading.Event | None) -> None:
    from huggingface_hub.utils import WeakFileLock

    blob = p.storage / "blobs" / pf.etag
    pointer = p.storage / "snapshots" / p.sha / pf.name
    if _size(pointer) == pf.size:
        return tracker.file_complete(pf)
    lock = p.cache_dir / ".locks" / p.storage.name / f"{pf.etag}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with WeakFileLock(lock):
        if _size(blob) != pf.size:
            _fetch_blob(p, pf, blob, token, tracker, stop, cancel)
        _link(blob, pointer)
    tracker.file_complete(pf)


def _fetch_blob(p, pf, blob: Path, token, tracker, stop, cancel) -> None:
    import httpx2
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    from tunedoc import __version__

    part = _incomplete(blob)
    url = hf_hub_url(p.repo, pf.name, revision=p.sha, endpoint=p.endpoint)
    base_headers = build_hf_headers(token=token or False, library_name="tunedoc", library_version=__version__)
    base_headers["Accept-Encoding"] = "identity"  # sizes and ranges are of the stored bytes
    hasher = hashlib.sha256() if pf.sha256 else None
    have = _size(part) or 0
    if have > pf.size:
        have = 0
    mode = "r+b" if part.exists() else "wb"
    fails = 0
    with open(part, mode) as fh:
        if have and hasher is not None:  # hash what is already there, to verify the whole file at the end
            fh.seek(0)
            left = have
            while left:
                chunk = fh.read(min(left, 1 << 22))
                hasher.update(chunk)
                left -= len(chunk)
        fh.seek(have)
        fh.truncate()
        tracker.file_started(pf, have)
        while have < pf.size:
            if stop.is_set():
                raise _cancelled(p) if cancel is not None and cancel.is_set() else _Stopped()
            headers = dict(base_headers)
            if have:
                headers["Range"] = f"bytes={have}-"
            got_bytes = False
            try:
                with get_session().stream("GET", url, headers=headers, follow_redirects=True,
                                          timeout=httpx2.Timeout(60.0, connect=15.0)) as r:
                    hf_raise_for_status(r)
                    if have and r.status_code != 206:  # server ignored the Range: start over
                        fh.seek(0)
                        fh.truncate()
                        hasher = hashlib.sha256() if pf.sha256 else None
                        tracker.file_started(pf, 0)
                        have = 0
                    for chunk in r.iter_bytes():
                        if not chunk:
                            continue
                        if stop.is_set():
                            raise _cancelled(p) if cancel is not None and cancel.is_set() else _Stopped()
                        if have + len(chunk) > pf.size:
                            raise HubError("corrupt", f"{pf.name}: the server sent more than {pf.size} bytes",
                                           "run the download again; if it repeats, the mirror is serving a "
                                           "different file than it lists")
                        fh.write(chunk)
                        if hasher is not None:
                            hasher.update(chunk)
                        have += len(chunk)
                        got_bytes = True
                        tracker.add(pf, len(chunk))
            except OSError as e:
                if e.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise disk_full_error(str(part), e) from e
                raise
            except (httpx2.TransportError,) as e:
                fails = 0 if got_bytes else fails + 1
                if fails >= _RETRIES:
                    raise
                time.sleep(min(0.5 * 2 ** fails, 8.0))
                continue
            if have < pf.size and not got_bytes:
                fails += 1
                if fails >= _RETRIES:
                    raise HubError("network", f"{pf.name}: the server ended the transfer at {have} of {pf.size} "
                                   "bytes, repeatedly", "run the same command again to resume")
        fh.flush()
        os.fsync(fh.fileno())
    if hasher is not None and hasher.hexdigest() != pf.sha256:
        part.unlink(missing_ok=True)
        raise HubError("corrupt", f"{pf.name}: sha256 {hasher.hexdigest()[:12]}… does not match the published "
                       f"{pf.sha256[:12]}…; the partial file was deleted",
                       "run the download again; if it repeats, the mirror serves a different file than it lists")
    os.chmod(part, _file_mode())
    os.replace(part, blob)


# -- progress ---------------------------------------------------------------------------------------------------

class SpeedMeter:
    """Bytes per second over the last few seconds, from the running count of bytes received (the average since the
    start while the samples span under 0.2 s). The speed of both downloads, the Hub's and ModelScope's; the caller
    holds its own lock."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int]] = deque()
        self.t0 = time.monotonic()

    def __call__(self, received: int) -> float:
        now = time.monotonic()
        self.samples.append((now, received))
        while len(self.samples) > 2 and now - self.samples[0][0] > 3.0:
            self.samples.popleft()
        t, b = self.samples[0]
        if now - t < 0.2:
            elapsed = now - self.t0
            return received / elapsed if elapsed > 0.01 else 0.0
        return (received - b) / (now - t)


class _Tracker:
    """Totals across the worker threads; calls on_progress under its lock (never concurrently), throttled."""

    def __init__(self, p: DownloadPlan, cb: Callable[[Progress], None] | None) -> None:
        self.cb = cb
        self.lock = threading.Lock()
        self.total = p.total_bytes
        self.files_total = len(p.files)
        self.file_done = {f.name: (f.size if f.complete else f.present) for f in p.files}
        self.file_total = {f.name: f.size for f in p.files}
        self.done = sum(self.file_done.values())
        self.received = 0  # bytes over the network in this run
        self.files_done = 0
        self.speed = SpeedMeter()
        self.last_emit = 0.0

    def file_started(self, pf: PlannedFile, have: int) -> None:
        with self.lock:
            self.done += have - self.file_done[pf.name]
            self.file_done[pf.name] = have
            self._emit(pf.name, force=True)

    def add(self, pf: PlannedFile, n: int) -> None:
        with self.lock:
            self.file_done[pf.name] += n
            self.done += n
            self.received += n
            self._emit(pf.name)

    def file_complete(self, pf: PlannedFile) -> None:
        with self.lock:
            self.done += pf.size - self.file_done[pf.name]
            self.file_done[pf.name] = pf.size
            self.files_done += 1
            self._emit(pf.name, force=True)

    def finish(self) -> None:
        pass

    def _emit(self, name: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.cb is None or (not force and now - self.last_emit < 0.1):
            return
        self.last_emit = now
        speed = self.speed(self.received)
        left = self.total - self.done
        eta = left / speed if speed > 0 else (0.0 if left == 0 else None)
        self.cb(Progress(file=name, file_done=self.file_done[name], file_total=self.file_total[name],
                         done=self.done, total=self.total, speed_bps=speed, eta_s=eta,
                         files_done=self.files_done, files_total=self.files_total))


# -- helpers ----------------------------------------------------------------------------------------------------

class _Stopped(Exception):
    """Another file failed; this one stops quietly (its partial file is kept)."""


def _cancelled(p: DownloadPlan) -> HubError:
    return HubError("cancelled", f"download of {p.repo} cancelled; finished files and partial ones are kept",
                    f"run `tunedoc download {p.repo}` again to resume where it stopped")


def _forward(cancel: threading.Event, stop: threading.Event) -> None:
    while not stop.is_set():
        if cancel.wait(0.1):
            stop.set()
            return


def _link(blob: Path, pointer: Path) -> None:
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if pointer.is_symlink() or pointer.exists():
        pointer.unlink()
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), pointer)
    except OSError:  # no symlinks (Windows without developer mode): a copy, as huggingface_hub does
        shutil.copyfile(blob, pointer)


def _write_ref(storage: Path, revision: str, sha: str) -> None:
    ref = storage / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    if not ref.exists() or ref.read_text() != sha:
        ref.write_text(sha)


def _incomplete(blob: Path) -> Path:
    return blob.with_name(blob.name + ".incomplete")


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes on the disk that holds `path`, or would once it is created (its nearest existing parent);
    None when no parent can be asked. The disk check of both downloads (the Hub's and ModelScope's)."""
    path = Path(path)
    for candidate in [path, *path.parents]:
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


_MODE: list[int] = []


def _file_mode() -> int:
    """0o644 less the process umask (read once: os.umask is process-wide, not thread-safe)."""
    if not _MODE:
        mask = os.umask(0o022)
        os.umask(mask)
        _MODE.append(0o644 & ~mask)
    return _MODE[0]


def _globs(value) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    out = [g.strip() for v in value for g in v.split(",") if g.strip()]
    return out or None


def _gb(n: int) -> str:
    from tunedoc.models.fmt import human_bytes

    return human_bytes(n)
