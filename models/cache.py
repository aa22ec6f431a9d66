"""The local model cache: what is on disk, how big, when last used; and deleting it.

Reads huggingface_hub's cache (HF_HUB_CACHE, or HF_HOME/hub) with its own scanner, plus any extra directories:
either other HF-style caches or plain folders of models (a folder with a config.json is a model).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tunedoc.models.errors import HubError
from tunedoc.models.hub import cache_dir

__all__ = ["CachedModel", "CachedRevision", "HubError", "list_cache", "remove", "find"]

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class CachedRevision:
    commit: str
    refs: list[str]
    size: int
    files: int
    path: str


@dataclass
class CachedModel:
    repo: str  # owner/name for Hub models; the folder name for plain model folders
    size: int  # bytes on disk (complete blobs)
    path: str
    revisions: list[CachedRevision] = field(default_factory=list)
    incomplete_bytes: int = 0  # partial downloads that `tunedoc download` would resume
    last_used: float | None = None  # unix time a file was last read
    last_modified: float | None = None
    source: str = "hf-cache"  # "hf-cache" or "folder"

    def to_dict(self) -> dict:
        return asdict(self)


def list_cache(extra_dirs=(), cache: str | Path | None = None) -> list[CachedModel]:
    """Models in the HF cache and in `extra_dirs`, largest first."""
    roots = [Path(cache) if cache else cache_dir()]
    out: list[CachedModel] = []
    for d in [*roots, *(Path(x).expanduser() for x in extra_dirs)]:
        if not d.is_dir():
            if d not in roots:
                raise HubError("bad_input", f"{d} is not a directory", "pass an existing folder to --dir")
            continue
        if any(d.glob("models--*")):
            out.extend(_scan_hf(d))
        elif d not in roots:
            out.extend(_scan_folders(d))
    return sorted(out, key=lambda m: -m.size)


def find(repo: str, cache: str | Path | None = None) -> CachedModel | None:
    return next((m for m in list_cache(cache=cache) if m.repo == repo), None)


def remove(repo: str, revision: str | None = None, cache: str | Path | None = None) -> int:
    """Delete a model (or one revision: commit or ref name) from the HF cache. Returns the bytes freed."""
    root = Path(cache) if cache else cache_dir()
    folder = root / ("models--" + repo.replace("/", "--"))
    if not folder.is_dir():
        raise HubError("not_found", f"{repo} is not in the cache at {root}",
                       "see what is there with `tunedoc models`")
    if revision is None:
        freed = _tree_size(folder / "blobs")
        shutil.rmtree(folder)
        return freed
    model = next((m for m in _scan_hf(root) if m.repo == repo), None)
    commit = _resolve(folder, revision)
    if model is None or commit not in {r.commit for r in model.revisions}:
        known = ", ".join(sorted({c for r in (model.revisions if model else []) for c in [r.commit[:12], *r.refs]}))
        raise HubError("not_found", f"revision {revision!r} of {repo} is not in the cache",
                       f"cached revisions: {known or 'none'}; leave out --revision to delete the whole model")
    from huggingface_hub import scan_cache_dir

    strategy = scan_cache_dir(root).delete_revisions(commit)
    freed = strategy.expected_freed_size
    strategy.execute()
    return freed


def _scan_hf(root: Path) -> list[CachedModel]:
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(root)
    partial: dict[str, int] = {}
    for inc in info.incomplete_files:
        repo_dir = inc.file_path.parent.parent.name
        partial[repo_dir] = partial.get(repo_dir, 0) + inc.size_on_disk
    out = []
    seen = set()
    for r in info.repos:
        if r.repo_type != "model":
            continue
        seen.add(r.repo_path.name)
        revs = [CachedRevision(commit=v.commit_hash, refs=sorted(v.refs), size=v.size_on_disk, files=v.nb_files,
                               path=str(v.snapshot_path))
                for v in sorted(r.revisions, key=lambda v: -v.last_modified)]
        out.append(CachedModel(repo=r.repo_id, size=r.size_on_disk, path=str(r.repo_path), revisions=revs,
                               incomplete_bytes=partial.get(r.repo_path.name, 0), last_used=r.last_accessed,
                               last_modified=r.last_modified))
    for name, size in partial.items():  # only partial files so far: still worth showing (and deleting)
        if name not in seen and name.startswith("models--"):
            out.append(CachedModel(repo=name[len("models--"):].replace("--", "/"), size=0, path=str(root / name),
                                   incomplete_bytes=size))
    return out


def _scan_folders(root: Path) -> list[CachedModel]:
    out = []
    for cfg in sorted([*root.glob("config.json"), *root.glob("*/config.json"), *root.glob("*/*/config.json")]):
        folder = cfg.parent
        files = [p for p in folder.rglob("*") if p.is_file()]
        st = [p.stat() for p in files]
        out.append(CachedModel(repo=str(folder.relative_to(root)) if folder != root else folder.name,
                               size=sum(s.st_size for s in st), path=str(folder),
                               last_used=max((s.st_atime for s in st), default=None),
                               last_modified=max((s.st_mtime for s in st), default=None), source="folder"))
    return out


def _resolve(folder: Path, revision: str) -> str:
    if _COMMIT.match(revision):
        return revision
    ref = folder / "refs" / revision
    if ref.is_file():
        return ref.read_text().strip()
    snaps = [p.name for p in (folder / "snapshots").glob(revision + "*")] if len(revision) >= 7 else []
    return snaps[0] if len(snaps) == 1 else revision


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                try:
                    total += os.path.getsize(p)
                except OSError:
                    pass
    return total
