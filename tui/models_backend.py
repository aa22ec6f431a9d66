"""What the Models screen calls: the models engine (models.hub, models.download, models.cache) and a fit summary,
plus the state of one download as the screen shows it. No Textual, no torch.

    backend = ModelsBackend()                                  # real: HF_ENDPOINT, the HF cache, this GPU
    backend = ModelsBackend(gpu=lambda: GpuProbe(GpuChoice("RTX 4090", 24.0, 24.0)))   # tests: a fixed GPU

Every method but `endpoint` and `cache_dir` blocks (network, disk): call it from a thread worker. Failures are
`models.errors.HubError` (kind, message, hint), shown as they are.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tunedoc.models.errors import HubError
from tunedoc.models.modelscope import PREFIX
from tunedoc.tui.profile_backend import GpuProbe, probe_with_doctor


SOURCES = ("hf", "modelscope")
SOURCE_NAMES = {"hf": "Hugging Face", "modelscope": "ModelScope"}
MS_PREFIX = PREFIX  # a ModelScope model's key on the screen (cache rows, downloads): modelscope://owner/name


def is_modelscope(repo: str) -> bool:
    return repo.startswith(MS_PREFIX)


class ModelsBackend:
    """`source` (hf or modelscope) decides where search and info go; plan, download and remove follow the repo's
    own source (a modelscope:// key); list_cache lists both caches."""

    def __init__(self, gpu: Callable[[], GpuProbe] | None = None, cache: str | Path | None = None,
                 source: str = "hf") -> None:
        self._gpu_probe = gpu or probe_with_doctor
        self._gpu: GpuProbe | None = None
        self._lock = threading.Lock()
        self.cache = cache  # None: HF_HUB_CACHE / HF_HOME as huggingface_hub resolves them
        self.source = source

    def set_source(self, source: str) -> None:
        if source not in SOURCES:
            raise ValueError(f"source {source!r}: one of {', '.join(SOURCES)}")
        self.source = source

    def endpoint(self) -> str:
        if self.source == "modelscope":
            from tunedoc.models.modelscope import endpoint as ms_endpoint

            return ms_endpoint()
        from tunedoc.models.hub import endpoint

        return endpoint()

    def endpoint_note(self) -> str:
        """What the endpoint is: the Hub, an HF_ENDPOINT mirror, ModelScope or a MODELSCOPE_DOMAIN server."""
        ep = self.endpoint().rstrip("/")
        if self.source == "modelscope":
            return ("the default server (set MODELSCOPE_DOMAIN for another)" if ep == "https://www.modelscope.cn"
                    else "MODELSCOPE_DOMAIN server")
        return "the Hub (set HF_ENDPOINT for a mirror)" if ep == "https://huggingface.co" else "HF_ENDPOINT mirror"

    def cache_dir(self) -> Path:
        if self.source == "modelscope":
            from tunedoc.models.modelscope import cache_dir as ms_cache

            return ms_cache()
        from tunedoc.models.hub import cache_dir

        return Path(self.cache) if self.cache else cache_dir()

    def search(self, query: str, limit: int = 30):
        if self.source == "modelscope":
            from tunedoc.models import modelscope as ms

            return ms.search(query, limit=limit)
        from tunedoc.models.hub import search

        return search(query, limit=limit)

    def info(self, repo: str):
        if self.source == "modelscope" or is_modelscope(repo):
            from tunedoc.models import modelscope as ms

            return ms.info(repo)
        from tunedoc.models.hub import info

        return info(repo)

    def gpu(self) -> GpuProbe:
        with self._lock:  # probe once per app: NVML is quick, nvidia-smi is not always
            if self._gpu is None:
                try:
                    self._gpu = self._gpu_probe()
                except Exception as e:  # noqa: BLE001 - the fit is a bonus
                    self._gpu = GpuProbe(None, f"the GPU probe failed: {e}")
            return self._gpu

    def fit_summary(self, mi) -> str:
        """One line: which built-in profiles fit this machine's GPU for `mi` (a models.hub.ModelInfo or a
        models.modelscope.MsInfo)."""
        if not any(f.name == "config.json" for f in mi.files):
            return "no config.json in this repo: the memory estimate needs one"
        if getattr(mi, "supported", None) is False:
            return f"architecture {mi.model_type!r} is not one the estimator knows"
        from tunedoc.profiles.archs import UnsupportedArchitecture
        from tunedoc.profiles.fit import fit

        try:
            if getattr(mi, "source", "hf") == "modelscope":
                from tunedoc.models.modelscope import fetch_json as ms_fetch

                config = ms_fetch(mi.repo, "config.json", mi.revision)
            else:
                from tunedoc.models.hub import fetch_json

                config = fetch_json(mi.repo, "config.json", mi.sha, endpoint_url=mi.endpoint)
        except HubError as e:
            return f"could not read config.json: {e.message}"
        probe = self.gpu()
        if probe.gpu is None:
            return f"no GPU to fit on ({probe.error}); the Profile screen takes a VRAM size"
        g = probe.gpu
        try:
            results = fit(config, g.free_gb, gpu=g.name)
        except (UnsupportedArchitecture, ValueError, KeyError) as e:
            return f"no estimate: {e}"
        where = f"{g.name or 'GPU'} ({g.free_gb:.1f} GiB free)"
        fits = [r for r in results if r.fits]
        if not fits:
            return f"nothing fits {where} as is; the Profile screen shows what would"
        return f"on {where}: " + ", ".join(f"{r.profile.name} {r.estimate.total_gb:.1f} GiB" for r in fits)

    def plan(self, repo: str):
        if is_modelscope(repo):
            from tunedoc.models import modelscope as ms

            return ms.plan(repo)
        from tunedoc.models.download import plan

        return plan(repo, cache=self.cache)

    def download(self, the_plan, on_progress, cancel: threading.Event) -> Path:
        if isinstance(the_plan.files, int):  # a ModelScope plan (models.modelscope.MsPlan)
            return _ms_download(the_plan, on_progress, cancel)
        from tunedoc.models.download import download

        return download(the_plan.repo, on_progress=on_progress, cancel=cancel, cache=self.cache, the_plan=the_plan)

    def list_cache(self):
        """Both caches: the Hugging Face one, then ModelScope's (each entry has its `source`)."""
        from tunedoc.models import modelscope as ms
        from tunedoc.models.cache import list_cache

        return [*list_cache(cache=self.cache), *ms.list_cache()]

    def remove(self, repo: str) -> int:
        if is_modelscope(repo):
            from tunedoc.models import modelscope as ms

            return ms.remove(repo)
        from tunedoc.models.cache import remove

        return remove(repo, cache=self.cache)


class _Cancelled(BaseException):
    """Raised from the progress callback to stop the modelscope library's download."""


def _ms_download(the_plan, on_progress, cancel: threading.Event) -> Path:
    """modelscope's snapshot_download, its progress as models.download.Progress (speed over the last few seconds,
    ETA). A cancel stops it at the next chunk; the library resumes the partial files next time."""
    from tunedoc.models import modelscope as ms

    import logging

    # the library logs retries and failures to the terminal the screen draws on; the screen shows the outcome
    for name in ("modelscope_hub", "modelscope"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    def report(pr) -> None:
        if cancel.is_set():  # not an Exception: the library retries those, for half a minute
            raise _Cancelled()
        on_progress(pr)

    try:
        path = ms.download(the_plan.repo, revision=the_plan.revision, the_plan=the_plan, on_progress=report)
    except _Cancelled:
        path = None
    if cancel.is_set() or path is None:
        raise HubError("cancelled", f"download of {MS_PREFIX}{the_plan.repo} cancelled", "")
    return path


@dataclass
class DownloadState:
    """One download as the screen shows it; updated only on the event loop, from messages."""

    repo: str
    status: str = "planning"  # planning | downloading | done | failed | cancelled
    files: dict[str, list[int]] = field(default_factory=dict)  # name -> [done, total]
    done: int = 0
    total: int = 0
    speed_bps: float = 0.0
    eta_s: float | None = None
    files_done: int = 0
    files_total: int = 0
    error: HubError | None = None
    path: str | None = None
    started: float = field(default_factory=time.monotonic)
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def active(self) -> bool:
        return self.status in ("planning", "downloading")

    def planned(self, the_plan) -> None:
        self.status = "downloading"
        self.total = the_plan.total_bytes
        self.done = the_plan.present_bytes
        if isinstance(the_plan.files, int):  # a ModelScope plan counts its files; progress names them
            self.files, self.files_total, self.files_done = {}, the_plan.files, 0
            return
        self.files = {f.name: [f.size if f.complete else f.present, f.size] for f in the_plan.files}
        self.files_total = len(the_plan.files)
        self.files_done = sum(1 for f in the_plan.files if f.complete)

    def update(self, pr) -> None:
        """Apply a models.download.Progress."""
        self.files[pr.file] = [pr.file_done, pr.file_total]
        self.done, self.total = pr.done, pr.total
        self.speed_bps, self.eta_s = pr.speed_bps, pr.eta_s
        self.files_done, self.files_total = pr.files_done, pr.files_total

    def finish(self, path: str | None, error: HubError | None) -> None:
        self.path, self.error = path, error
        if error is None:
            self.status = "done"
            self.done = self.total
            for f in self.files.values():
                f[0] = f[1]
            self.files_done = self.files_total
        else:
            self.status = "cancelled" if error.kind == "cancelled" else "failed"


class FakeModelsBackend:
    """Scripted Hub and cache for pilot and snapshot tests. A download reports `progress` (a list of
    models.download.Progress), then waits for `release()` when `hold` is set, then ends with `download_error` or
    the snapshot path. Records what the screen asked for."""

    def __init__(self, hits=(), infos=None, cached=(), fit="on RTX 4090 (22.5 GiB free): qlora-min 5.1 GiB",
                 search_error: HubError | None = None, info_errors=None, plan_files=(), progress=(),
                 hold: bool = False, download_error: HubError | None = None,
                 endpoint: str = "https://huggingface.co") -> None:
        self.hits, self.infos, self.cached = list(hits), dict(infos or {}), list(cached)
        self.fit, self.search_error, self.info_errors = fit, search_error, dict(info_errors or {})
        self.plan_files, self.progress, self.hold = list(plan_files), list(progress), hold
        self.download_error, self._endpoint = download_error, endpoint
        self.source = "hf"
        self._release = threading.Event()
        self.searched: list[str] = []
        self.downloaded: list[str] = []
        self.removed: list[str] = []
        self.cancelled = threading.Event()

    def release(self) -> None:
        self._release.set()

    def set_source(self, source: str) -> None:
        self.source = source

    def endpoint(self) -> str:
        return "https://www.modelscope.cn" if self.source == "modelscope" else self._endpoint

    def endpoint_note(self) -> str:
        if self.source == "modelscope":
            return "the default server (set MODELSCOPE_DOMAIN for another)"
        default = self._endpoint.rstrip("/") == "https://huggingface.co"
        return "the Hub (set HF_ENDPOINT for a mirror)" if default else "HF_ENDPOINT mirror"

    def cache_dir(self) -> Path:
        if self.source == "modelscope":
            return Path("/home/ana/.cache/modelscope/hub")
        return Path("/home/ana/.cache/huggingface/hub")

    def search(self, query: str, limit: int = 30):
        self.searched.append(query)
        if self.search_error:
            raise self.search_error
        return [h for h in self.hits if query.lower() in h.id.lower()]

    def info(self, repo: str):
        if repo in self.info_errors:
            raise self.info_errors[repo]
        return self.infos[repo]

    def fit_summary(self, mi) -> str:
        return self.fit

    def plan(self, repo: str):
        from tunedoc.models.download import DownloadPlan, PlannedFile

        return DownloadPlan(repo, None, "0" * 40, self._endpoint, self.cache_dir(),
                            files=[PlannedFile(n, size, None, n) for n, size in self.plan_files])

    def download(self, the_plan, on_progress, cancel: threading.Event) -> Path:
        self.downloaded.append(the_plan.repo)
        for pr in self.progress:
            on_progress(pr)
        if self.hold:
            while not self._release.wait(0.02):
                if cancel.is_set():
                    self.cancelled.set()
                    raise HubError("cancelled", f"download of {the_plan.repo} cancelled", "")
        if self.download_error:
            raise self.download_error
        return the_plan.storage / "snapshots" / the_plan.sha

    def list_cache(self):
        return [c for c in self.cached if c.repo not in self.removed]

    def remove(self, repo: str) -> int:
        self.removed.append(repo)
        return next((c.size for c in self.cached if c.repo == repo), 0)


__all__ = ["DownloadState", "FakeModelsBackend", "ModelsBackend", "MS_PREFIX", "SOURCE_NAMES", "is_modelscope"]
