"""Talking to the Hub (or a mirror): which endpoint, which token, search and model info.

Everything goes through huggingface_hub's HfApi with the endpoint passed explicitly: huggingface_hub reads
HF_ENDPOINT once at import, we read it at each call, so a UI that changes it (or a test) is honoured.
No torch, no Textual: the TUI calls these from worker threads.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tunedoc.models.errors import HubError, translate

DEFAULT_ENDPOINT = "https://huggingface.co"
# search, model info and small JSON files: a screen waits on these, so an endpoint that does not answer (offline,
# a firewall that drops packets) fails in seconds with the mirror hint; downloads have their own, longer timeouts
LOOKUP_TIMEOUT_S = 8.0

# bytes per element of the safetensors dtypes the Hub reports in `safetensors.parameters`
_DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "BF16": 2, "F16": 2, "I16": 2,
                "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "F4": 0.5}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".msgpack", ".h5", ".onnx", ".ckpt", ".gguf")


def endpoint() -> str:
    """The Hub in use: HF_ENDPOINT (a mirror) when set, else huggingface.co. Read at each call."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/")


def cache_dir() -> Path:
    """huggingface_hub's cache directory, resolved from the environment now (HF_HUB_CACHE, then HF_HOME/hub)."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def resolve_token(token: str | None = None) -> str | None:
    """The token to send: the one given, else HF_TOKEN, else the one `tunedoc login` / `hf auth login` stored.
    Never printed or logged by tunedoc."""
    if token:
        return token
    env = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if env and env.strip():
        return env.strip()
    home = os.environ.get("HF_HOME")
    path = os.environ.get("HF_TOKEN_PATH") or (os.path.join(home, "token") if home else None)
    if path:
        try:
            text = Path(path).expanduser().read_text().strip()
            return text or None
        except OSError:
            return None
    from huggingface_hub import get_token

    return get_token()


def api(endpoint_url: str | None = None, token: str | None = None):
    from huggingface_hub import HfApi

    from tunedoc import __version__

    return HfApi(endpoint=endpoint_url or endpoint(), token=resolve_token(token) or False,
                 library_name="tunedoc", library_version=__version__)


@dataclass
class ModelHit:
    """One search result."""

    id: str
    downloads: int | None = None
    likes: int | None = None
    license: str | None = None
    gated: str | bool | None = None  # False, "auto" or "manual"
    size_bytes: int | None = None  # weights size from the Hub's safetensors metadata, when it has it
    params: int | None = None
    model_type: str | None = None
    pipeline_tag: str | None = None
    supported: bool | None = None  # the memory estimator knows this architecture (None: unknown model_type)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RepoFileEntry:
    name: str
    size: int | None
    sha256: str | None = None  # LFS files: the content hash the Hub publishes (verified after download)
    blob_id: str | None = None  # git blob id (the cache's blob name for non-LFS files)

    @property
    def etag(self) -> str | None:
        """The name huggingface_hub gives this file's blob in the cache."""
        return self.sha256 or self.blob_id


class FileTotals:
    """For a model's info dataclass with `files` (each with a `size`, None when unknown): the Hub's ModelInfo and
    ModelScope's MsInfo."""

    @property
    def total_size(self) -> int:
        return sum(f.size or 0 for f in self.files)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total_size"] = self.total_size
        return d


@dataclass
class ModelInfo(FileTotals):
    """A repository at one revision: its files with sizes, and what the Hub says about it."""

    repo: str
    sha: str  # the commit the revision resolved to
    revision: str | None
    endpoint: str
    files: list[RepoFileEntry] = field(default_factory=list)
    license: str | None = None
    gated: str | bool | None = None
    model_type: str | None = None
    architectures: list[str] = field(default_factory=list)
    downloads: int | None = None
    likes: int | None = None
    params: int | None = None
    supported: bool | None = None
    last_modified: str | None = None


def search(query: str, limit: int = 20, token: str | None = None) -> list[ModelHit]:
    """Models whose id contains `query`, most downloaded first.

    One request, no retries: HfApi.list_models retries a refused connection for ~25 s, which is the wrong
    answer to a user whose network blocks the Hub (they need the mirror hint now).
    """
    from huggingface_hub import ModelInfo as HfModelInfo
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    from tunedoc import __version__

    ep = endpoint()
    tok = resolve_token(token)
    params = [("search", query), ("limit", str(limit)), ("sort", "downloads")]
    params += [("expand", e) for e in ("downloads", "likes", "gated", "tags", "config", "safetensors",
                                       "cardData", "pipeline_tag")]
    try:
        r = get_session().get(f"{ep}/api/models", params=params, timeout=LOOKUP_TIMEOUT_S,
                              headers=build_hf_headers(token=tok or False, library_name="tunedoc",
                                                       library_version=__version__))
        hf_raise_for_status(r)
        return [_hit(HfModelInfo(**d)) for d in r.json()[:limit]]
    except Exception as e:  # noqa: BLE001 - every failure becomes a HubError with a fix
        raise translate(e, repo=query or "(search)", endpoint=ep, has_token=bool(tok)) from e


def info(repo: str, revision: str | None = None, token: str | None = None, endpoint_url: str | None = None) -> ModelInfo:
    """Files (with sizes and LFS sha256), license, gating and the resolved commit of `repo` at `revision`."""
    ep = (endpoint_url or endpoint()).rstrip("/")
    repo = _check_repo_id(repo)
    try:
        m = api(ep, token).model_info(repo, revision=revision, files_metadata=True,
                                        timeout=LOOKUP_TIMEOUT_S)
    except Exception as e:  # noqa: BLE001
        raise translate(e, repo=repo, endpoint=ep, revision=revision, has_token=bool(resolve_token(token))) from e
    if not m.sha:
        raise HubError("server", f"{ep} returned no commit for {repo}", "the endpoint is not Hub-compatible?")
    files = [RepoFileEntry(name=s.rfilename, size=(s.lfs.size if s.lfs else s.size),
                           sha256=(s.lfs.sha256 if s.lfs else None), blob_id=s.blob_id)
             for s in (m.siblings or [])]
    cfg = m.config or {}
    model_type = cfg.get("model_type")
    return ModelInfo(
        repo=m.id or repo, sha=m.sha, revision=revision, endpoint=ep, files=files, license=_license(m),
        gated=m.gated, model_type=model_type, architectures=list(cfg.get("architectures") or []),
        downloads=m.downloads, likes=m.likes, params=(m.safetensors.total if m.safetensors else None),
        supported=_supported(model_type), last_modified=m.last_modified.isoformat() if m.last_modified else None)


def fetch_json(repo: str, filename: str, revision: str, token: str | None = None,
               endpoint_url: str | None = None) -> dict:
    """A small JSON file of a repo (e.g. config.json), read into memory without touching the cache."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    ep = (endpoint_url or endpoint()).rstrip("/")
    tok = resolve_token(token)
    try:
        r = get_session().get(hf_hub_url(repo, filename, revision=revision, endpoint=ep),
                              headers=build_hf_headers(token=tok or False, library_name="tunedoc"), timeout=LOOKUP_TIMEOUT_S)
        hf_raise_for_status(r)
        return r.json()
    except Exception as e:  # noqa: BLE001
        raise translate(e, repo=repo, endpoint=ep, revision=revision, has_token=bool(tok)) from e


def _check_repo_id(repo: str) -> str:
    repo = (repo or "").strip().strip("/")
    for prefix in ("https://huggingface.co/", "http://huggingface.co/", "hf://"):
        if repo.startswith(prefix):
            repo = repo[len(prefix):]
    parts = repo.split("/")
    if not repo or len(parts) > 2 or any(not p for p in parts):
        raise HubError("bad_input", f"{repo!r} is not a model id",
                       "use the form owner/name, e.g. Qwen/Qwen2.5-0.5B (`tunedoc models search NAME` finds it)")
    return repo


def _hit(m) -> ModelHit:
    cfg = m.config or {}
    params, size = _params_and_size(m.safetensors)
    model_type = cfg.get("model_type")
    return ModelHit(id=m.id, downloads=m.downloads, likes=m.likes, license=_license(m), gated=m.gated,
                    size_bytes=size, params=params, model_type=model_type, pipeline_tag=m.pipeline_tag,
                    supported=_supported(model_type))


def _params_and_size(st) -> tuple[int | None, int | None]:
    if not st:
        return None, None
    by_dtype = st.parameters or {}
    size = sum(int(n * _DTYPE_BYTES.get(dtype.upper(), 2)) for dtype, n in by_dtype.items())
    return st.total, size or None


def _license(m) -> str | None:
    card = m.card_data
    lic = getattr(card, "license", None) if card is not None else None
    if lic:
        return str(lic)
    for tag in m.tags or []:
        if tag.startswith("license:"):
            return tag.split(":", 1)[1]
    return None


def _supported(model_type: str | None) -> bool | None:
    if not model_type:
        return None
    try:
        from tunedoc.profiles.archs import supported_model_type
    except ImportError:
        return None
    return bool(supported_model_type(model_type))
