"""ModelScope as a second model source (`--source modelscope`), through the `modelscope` library's own hub API and
`snapshot_download` (the `[modelscope]` extra): search, info, download with a disk check and resume (the library
resumes with HTTP Range), the local cache (MODELSCOPE_CACHE, default ~/.cache/modelscope/hub, laid out as
models/OWNER--NAME/snapshots/REVISION/) and deleting from it. Errors are HubErrors with the fix, as for the Hub.

MODELSCOPE_DOMAIN (or MODELSCOPE_ENDPOINT) points the library at another server: the tests run a stand-in of
ours there.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tunedoc.models.download import Progress, SpeedMeter, free_bytes
from tunedoc.models.errors import HubError
from tunedoc.models.hub import FileTotals

PREFIX = "modelscope://"
INSTALL = "pip install 'tunedoc[modelscope]'  (or: pip install modelscope)"


def strip_prefix(repo: str) -> tuple[str, bool]:
    """("owner/name", True) for "modelscope://owner/name", else (repo, False)."""
    return (repo[len(PREFIX):], True) if repo.startswith(PREFIX) else (repo, False)


def endpoint() -> str:
    """The ModelScope server the library talks to."""
    for var in ("MODELSCOPE_ENDPOINT", "MODELSCOPE_DOMAIN"):
        value = os.environ.get(var, "").strip()
        if value:
            return value.rstrip("/") if "://" in value else f"https://{value}"
    return "https://www.modelscope.cn"


def cache_dir() -> Path:
    """MODELSCOPE_CACHE, else ~/.cache/modelscope/hub (the library's own default)."""
    env = os.environ.get("MODELSCOPE_CACHE", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "modelscope" / "hub"


# The library's API calls (search, info, file lists; not the file transfers) retry 5 times with a 10 s connect and a
# 60 s read timeout: half a minute and more before an unreachable server is reported. Its own documented settings,
# read once when it is first imported; a user's own values win.
API_ENV = {"MODELSCOPE_API_CONNECT_TIMEOUT": "5", "MODELSCOPE_API_TIMEOUT": "10", "MODELSCOPE_API_MAX_RETRIES": "1"}


def _api():
    for k, v in API_ENV.items():
        os.environ.setdefault(k, v)
    try:
        import warnings

        warnings.filterwarnings("ignore", message=".*MODELSCOPE_DOMAIN is deprecated.*")
        from modelscope_hub import HubApi
    except ImportError:
        raise HubError("missing", "the modelscope library is not installed", INSTALL) from None
    return HubApi(endpoint=endpoint())  # read now: the library keeps the first MODELSCOPE_DOMAIN it saw


def translate(exc: BaseException, repo: str = "") -> HubError:
    """The library's errors -> HubError with a fix."""
    if isinstance(exc, HubError):
        return exc
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    ep = endpoint()
    if name in ("NotExistError",) or "[404]" in text:
        return HubError("not_found", f"model {repo} was not found on ModelScope ({ep})",
                        f"check the id (owner/name) at {ep}/models/{repo}; ModelScope ids can differ from the "
                        "Hub's, e.g. Qwen/Qwen2.5-0.5B-Instruct")
    if name in ("AuthenticationError",) or "[401]" in text or "[403]" in text:
        return HubError("auth", f"ModelScope ({ep}) refused access to {repo}",
                        "set MODELSCOPE_API_TOKEN to an access token from your ModelScope account")
    import requests

    if isinstance(exc, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)) or \
            "Connection" in name or "Timeout" in name:
        return HubError("network", f"cannot reach ModelScope at {ep}: {text}",
                        "check the connection and any proxy (HTTPS_PROXY); or get the model from the Hugging Face "
                        "Hub or a mirror (HF_ENDPOINT=https://hf-mirror.com) without --source modelscope")
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:
        from tunedoc.models.errors import disk_full_error

        return disk_full_error(repo, exc)
    return HubError("error", f"ModelScope: {name}: {text}", "")


@dataclass
class Hit:
    id: str
    downloads: int = 0
    likes: int = 0
    license: str | None = None
    size_bytes: int | None = None
    source: str = "modelscope"

    def to_dict(self) -> dict:
        return asdict(self)


def search(query: str, limit: int = 20) -> list[Hit]:
    api = _api()
    try:
        page = api.list_repos("model", search=query, page_size=min(max(limit, 1), 100))
    except Exception as e:  # noqa: BLE001 - translated
        raise translate(e, query) from None
    return [Hit(f"{r.owner}/{r.name}", r.downloads or 0, r.likes or 0, r.license, r.file_size)
            for r in page.items[:limit]]


@dataclass
class MsFile:
    name: str
    size: int | None
    sha256: str | None = None


@dataclass
class MsInfo(FileTotals):
    repo: str
    endpoint: str
    revision: str
    downloads: int = 0
    likes: int = 0
    license: str | None = None
    files: list[MsFile] = field(default_factory=list)
    source: str = "modelscope"


def info(repo: str, revision: str | None = None) -> MsInfo:
    repo, _ = strip_prefix(repo)
    api = _api()
    try:
        meta = api.get_repo(repo, "model")
        files = api.list_repo_files(repo, "model", revision=revision or "master", recursive=True)
    except Exception as e:  # noqa: BLE001 - translated
        raise translate(e, repo) from None
    return MsInfo(repo, endpoint(), revision or "master", meta.downloads or 0, meta.likes or 0, meta.license,
                  [MsFile(f.path, f.size, getattr(f, "sha256", None)) for f in files
                   if getattr(f, "type", "blob") != "tree"])


LOOKUP_TIMEOUT_S = 8.0  # one small file: an unreachable server answers in seconds, not the library's retries


def fetch_json(repo: str, filename: str = "config.json", revision: str = "master",
               timeout: float = LOOKUP_TIMEOUT_S) -> dict:
    """A small JSON file of a ModelScope repo (config.json for the memory estimate), read without the cache, through
    ModelScope's file API (/api/v1/models/OWNER/NAME/repo?FilePath=...), as the library downloads files."""
    import requests

    repo, _ = strip_prefix(repo)
    try:
        r = requests.get(f"{endpoint()}/api/v1/models/{repo}/repo", params={"Revision": revision, "FilePath": filename},
                         timeout=timeout)
        if r.status_code == 404:
            raise HubError("not_found", f"{repo} has no {filename} on ModelScope ({endpoint()})", "")
        r.raise_for_status()
        data = r.json()
    except HubError:
        raise
    except ValueError:
        raise HubError("error", f"{repo}'s {filename} on ModelScope is not JSON", "") from None
    except Exception as e:  # noqa: BLE001 - translated
        raise translate(e, repo) from None
    if not isinstance(data, dict):
        raise HubError("error", f"{repo}'s {filename} on ModelScope is not a JSON object", "")
    return data


def snapshot_path(repo: str, revision: str = "master", cache: str | os.PathLike | None = None) -> Path:
    root = Path(cache) if cache else cache_dir()
    return root / "models" / repo.replace("/", "--", 1) / "snapshots" / revision


@dataclass
class MsPlan:
    repo: str
    revision: str
    endpoint: str
    cache_dir: str
    total_bytes: int
    present_bytes: int
    free_bytes: int | None
    files: int

    @property
    def needed_bytes(self) -> int:
        return self.total_bytes - self.present_bytes

    @property
    def fits(self) -> bool:
        return self.free_bytes is None or self.needed_bytes <= self.free_bytes

    def to_dict(self) -> dict:
        return {**asdict(self), "needed_bytes": self.needed_bytes, "fits": self.fits, "source": "modelscope"}


def plan(repo: str, revision: str | None = None, cache: str | os.PathLike | None = None) -> MsPlan:
    """What a download fetches and whether the disk holds it (files already complete count as present)."""
    mi = info(repo, revision)
    snap = snapshot_path(mi.repo, mi.revision, cache)
    present = sum(f.size or 0 for f in mi.files if (snap / f.name).is_file()
                  and (snap / f.name).stat().st_size == (f.size or 0))
    root = Path(cache) if cache else cache_dir()
    return MsPlan(mi.repo, mi.revision, mi.endpoint, str(root), mi.total_size, present, free_bytes(root),
                  len(mi.files))


def download(repo: str, revision: str | None = None, cache: str | os.PathLike | None = None,
             the_plan: MsPlan | None = None, on_progress=None) -> Path:
    """snapshot_download into the ModelScope cache after the disk check; an interrupted download resumes.
    on_progress(models.download.Progress) is called as bytes arrive, as for the Hub (speed over the last few
    seconds, ETA; from the library's ProgressCallback, one instance per file, possibly from several threads).
    The library's own tqdm bars and INFO lines are off during the call: the caller draws the one progress display."""
    repo, _ = strip_prefix(repo)
    p = the_plan or plan(repo, revision, cache)
    if not p.fits:
        raise HubError("disk", f"{repo} needs {p.needed_bytes} more bytes and {p.cache_dir} has {p.free_bytes} free",
                       "free some space or point MODELSCOPE_CACHE at a bigger disk")
    _api()  # the import error, if any, as a HubError
    from modelscope import snapshot_download

    callbacks = None
    if on_progress is not None:
        from modelscope_hub import ProgressCallback

        lock = threading.Lock()
        state = {"done": p.present_bytes}
        finished: set[str] = set()
        speed_of = SpeedMeter()  # as the Hub's download measures it

        class Report(ProgressCallback):
            def __init__(self, filename: str, file_size: int):
                super().__init__(filename, file_size)
                self.got = 0

            def update(self, size: int) -> None:
                with lock:
                    self.got += size
                    state["done"] += size
                    if self.got >= self.file_size:
                        finished.add(self.filename)
                    done = state["done"]
                    speed = speed_of(done - p.present_bytes)
                    on_progress(Progress(self.filename, self.got, self.file_size, done, p.total_bytes, speed,
                                         (p.total_bytes - done) / speed if speed > 0 else None, len(finished),
                                         p.files))

        callbacks = [Report]
    try:
        with _library_quiet():
            path = snapshot_download(repo, revision=revision or "master", cache_dir=str(cache or cache_dir()),
                                     progress_callbacks=callbacks, endpoint=endpoint())
    except Exception as e:  # noqa: BLE001 - translated
        raise translate(e, repo) from None
    return Path(path)


_QUIET_LOCK = threading.Lock()
_QUIET: dict = {"depth": 0}


@contextlib.contextmanager
def _library_quiet():
    """The modelscope library draws tqdm bars on stderr (a file count and one per file) with no switch to turn them
    off, and logs "Downloading N files" at INFO: both off while our download runs (its warnings and errors stay),
    by giving its download module a tqdm that is disabled, restored when the last download in this process ends."""
    import logging

    try:
        from modelscope_hub import _download as lib
    except ImportError:
        lib = None
    with _QUIET_LOCK:
        if _QUIET["depth"] == 0:
            level = _QUIET["logger"] = logging.getLogger("modelscope_hub").level
            logging.getLogger("modelscope_hub").setLevel(max(level, logging.WARNING))  # a caller's higher one stays
            if lib is not None and isinstance(getattr(lib, "tqdm", None), type):
                real = _QUIET["tqdm"] = lib.tqdm

                class _Off(real):  # a subclass: isinstance checks in the library still hold
                    def __init__(self, *args, **kwargs):
                        kwargs["disable"] = True
                        super().__init__(*args, **kwargs)

                lib.tqdm = _Off
        _QUIET["depth"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET["depth"] -= 1
            if _QUIET["depth"] == 0:
                logging.getLogger("modelscope_hub").setLevel(_QUIET.pop("logger"))
                if "tqdm" in _QUIET and lib is not None:
                    lib.tqdm = _QUIET.pop("tqdm")


@dataclass
class MsCached:
    repo: str
    path: str
    size: int
    revisions: list[str]
    last_used: float | None
    incomplete_bytes: int = 0  # partial files (.incomplete) a `tunedoc download --source modelscope` resumes
    source: str = "modelscope"

    def to_dict(self) -> dict:
        return asdict(self)


def list_cache(cache: str | os.PathLike | None = None) -> list[MsCached]:
    """Models in the ModelScope cache (models/OWNER--NAME/snapshots/REV/ with at least one file)."""
    root = (Path(cache) if cache else cache_dir()) / "models"
    out = []
    if not root.is_dir():
        return out
    for d in sorted(root.iterdir()):
        snaps = d / "snapshots"
        if "--" not in d.name or not snaps.is_dir():
            continue
        every = [f for f in snaps.rglob("*") if f.is_file()]
        files = [f for f in every if not f.name.endswith(".incomplete")]
        if not every:
            continue
        out.append(MsCached(d.name.replace("--", "/", 1), str(d), sum(f.stat().st_size for f in files),
                            sorted(s.name for s in snaps.iterdir() if s.is_dir()),
                            max(f.stat().st_atime for f in every),
                            sum(f.stat().st_size for f in every if f.name.endswith(".incomplete"))))
    return out


def remove(repo: str, cache: str | os.PathLike | None = None) -> int:
    """Delete a model from the ModelScope cache; the bytes freed. HubError when it is not there."""
    repo, _ = strip_prefix(repo)
    hit = next((m for m in list_cache(cache) if m.repo == repo), None)
    if hit is None:
        raise HubError("not_found", f"{repo} is not in the ModelScope cache ({cache or cache_dir()})",
                       "see what is there with `tunedoc models`")
    shutil.rmtree(hit.path)
    return hit.size + hit.incomplete_bytes
