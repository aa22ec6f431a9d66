"""A small Hugging Face Hub for tests: the part of the protocol huggingface_hub 2.4 uses to search, read model
info, list trees and download files, served from generated files on 127.0.0.1.

Routes (as huggingface_hub 2.4 calls them, see hf_api.py, file_download.py, _snapshot_download.py):
  GET  /api/models?search=&limit=&sort=&expand=...        list_models
  GET  /api/models/{repo}[/revision/{rev}][?blobs=true]     model_info / repo_info (siblings, sizes, lfs, gated)
  GET  /api/models/{repo}/tree/{rev}?recursive=...          list_repo_tree (used by `hf download`)
  GET  /api/whoami-v2                                       whoami (login)
  HEAD/GET /{repo}/resolve/{rev}/{path}                     ETag, X-Repo-Commit; LFS files answer 302 to the CDN
                                                            with X-Linked-Etag / X-Linked-Size, like the Hub
  HEAD/GET {cdn}/blobs/{sha256}                             the CDN: a second port, so it is another origin and
                                                            clients must not send the token there
Errors carry the Hub's X-Error-Code headers: RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo (401
without a token, 403 with a token that was not granted). No X-Xet-* headers are sent, so clients use plain HTTP.
Range requests answer 206. `drop_after[name] = n` closes the connection after n body bytes of that file, once;
`throttle_bps` slows every body; `bytes_served[name]` counts the body bytes sent per file.

Run as a script for benchmarks: `python tests/models/fakehub.py --mb 300 --files 3` prints `READY <endpoint>`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import socket
import struct
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class FakeFile:
    name: str
    data: bytes | None = None  # content in memory (tests), or
    path: Path | None = None  # content on disk (benchmarks, served with sendfile)
    lfs: bool = False

    def __post_init__(self) -> None:
        if self.path is not None:
            self.size = self.path.stat().st_size
            h = hashlib.sha256()
            with open(self.path, "rb") as f:
                while chunk := f.read(1 << 22):
                    h.update(chunk)
            self.sha256 = h.hexdigest()
        else:
            assert self.data is not None
            self.size = len(self.data)
            self.sha256 = hashlib.sha256(self.data).hexdigest()
        if self.lfs:  # git stores a pointer file; its git oid is what the Hub calls the blob id
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {self.size}\n"
            self.pointer_size = len(pointer)
            self.blob_id = _git_oid(pointer.encode())
        else:
            self.blob_id = _git_oid(self.data if self.data is not None else self.path.read_bytes())

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_id

    def read(self, start: int, end: int) -> bytes:
        if self.data is not None:
            return self.data[start:end]
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(end - start)


@dataclass
class FakeRepo:
    id: str
    files: dict[str, FakeFile]
    sha: str = ""
    branches: dict[str, str] = field(default_factory=dict)  # branch/tag -> commit
    gated: bool | str = False  # False, "auto", "manual"
    granted: set[str] = field(default_factory=set)  # tokens allowed through the gate
    license: str = "apache-2.0"
    model_type: str | None = "llama"
    downloads: int = 0
    likes: int = 0
    params: dict[str, int] | None = None  # safetensors parameters per dtype, e.g. {"BF16": 494_000_000}

    def __post_init__(self) -> None:
        if not self.sha:
            self.sha = hashlib.sha1(self.id.encode()).hexdigest()
        self.branches.setdefault("main", self.sha)

    def commit(self, rev: str | None) -> str | None:
        rev = rev or "main"
        if rev in self.branches:
            return self.branches[rev]
        return rev if rev in self.branches.values() else None

    def info(self, blobs: bool) -> dict:
        siblings = []
        for f in self.files.values():
            s = {"rfilename": f.name}
            if blobs:
                s.update(size=f.size if not f.lfs else f.pointer_size, blobId=f.blob_id)
                if f.lfs:
                    s["size"] = f.size
                    s["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": f.pointer_size}
            siblings.append(s)
        d = {
            "_id": self.sha[:24], "id": self.id, "modelId": self.id, "author": self.id.split("/")[0],
            "sha": self.sha, "lastModified": "2025-01-01T00:00:00.000Z", "private": False, "disabled": False,
            "gated": self.gated, "downloads": self.downloads, "likes": self.likes, "library_name": "transformers",
            "pipeline_tag": "text-generation",
            "tags": ["transformers", "safetensors", f"license:{self.license}"],
            "cardData": {"license": self.license}, "siblings": siblings,
            "createdAt": "2024-06-01T00:00:00.000Z", "usedStorage": sum(f.size for f in self.files.values()),
        }
        if self.model_type:
            d["config"] = {"model_type": self.model_type, "architectures": ["LlamaForCausalLM"]}
        if self.params:
            d["safetensors"] = {"parameters": self.params, "total": sum(self.params.values())}
        return d

    def tree(self) -> list[dict]:
        out = []
        for f in self.files.values():
            e = {"type": "file", "oid": f.blob_id, "size": f.size, "path": f.name}
            if f.lfs:
                e["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
            out.append(e)
        return out


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


TINY_WEIGHTS = 1_500_000  # bytes of the fixture repos' safetensors file (tests/models/conftest.py)


def tiny_llama_files(weights_bytes: int = 2_000_000, seed: int = 0, with_bin: bool = True) -> dict[str, FakeFile]:
    """A tiny Llama-shaped model: real config/tokenizer JSON, a valid safetensors file of random F32 data,
    and (optionally) a pytorch_model.bin that a download should skip in favour of the safetensors."""
    rng = random.Random(seed)
    n = weights_bytes // 4
    header = json.dumps({"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    header += b" " * (-len(header) % 8)
    st = struct.pack("<Q", len(header)) + header + rng.randbytes(4 * n)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
              "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
              "num_hidden_layers": 2, "vocab_size": 256, "max_position_embeddings": 128,
              "rms_norm_eps": 1e-6, "tie_word_embeddings": True, "torch_dtype": "float32"}
    files = [
        FakeFile(".gitattributes", b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"),
        FakeFile("README.md", b"---\nlicense: apache-2.0\n---\n# tiny test model\n"),
        FakeFile("config.json", json.dumps(config, indent=2).encode()),
        FakeFile("tokenizer_config.json", b'{"model_max_length": 128}'),
        FakeFile("model.safetensors", st, lfs=True),
    ]
    if with_bin:
        files.append(FakeFile("pytorch_model.bin", rng.randbytes(weights_bytes), lfs=True))
    return {f.name: f for f in files}


class FakeHub:
    """Start with `with FakeHub() as hub:`; `hub.url` is the endpoint to put in HF_ENDPOINT."""

    def __init__(self, repos: list[FakeRepo] | None = None, tokens: dict[str, str] | None = None) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.tokens = tokens if tokens is not None else {"hf_good": "tester", "hf_other": "someone"}
        self.drop_after: dict[str, int] = {}
        self.throttle_bps: float | None = None
        self.bytes_served: Counter[str] = Counter()
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.generation = 0  # bumped by reset_counters: late bytes of older requests are not counted
        for r in repos or []:
            self.add(r)
        self._servers: list[ThreadingHTTPServer] = []

    def add(self, repo: FakeRepo) -> FakeRepo:
        self.repos[repo.id] = repo
        return repo

    # -- lifecycle
    def start(self) -> FakeHub:
        for role in ("hub", "cdn"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self, role))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            self._servers.append(server)
        self.url = f"http://127.0.0.1:{self._servers[0].server_address[1]}"
        self.cdn_url = f"http://127.0.0.1:{self._servers[1].server_address[1]}"
        return self

    def stop(self) -> None:
        for s in self._servers:
            s.shutdown()
            s.server_close()
        self._servers.clear()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset_counters(self) -> None:
        with self.lock:
            self.generation += 1
            self.bytes_served.clear()
            self.requests.clear()

    def blob(self, sha256: str) -> FakeFile | None:
        for repo in self.repos.values():
            for f in repo.files.values():
                if f.lfs and f.sha256 == sha256:
                    return f
        return None


def _make_handler(hub: FakeHub, role: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as clients pool connections

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._route("HEAD")

        def do_GET(self) -> None:
            self._route("GET")

        # -- helpers
        def _token(self) -> str | None:
            auth = self.headers.get("Authorization") or ""
            return auth[7:] if auth.startswith("Bearer ") else None

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, ctype="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)

        def _json(self, obj, status=200, headers=None) -> None:
            self._send(status, json.dumps(obj).encode(), headers)

        def _error(self, status: int, code: str | None, message: str, headers: dict | None = None) -> None:
            h = {"X-Error-Message": message, **(headers or {})}
            if code:
                h["X-Error-Code"] = code
            self._json({"error": message}, status, h)

        def _route(self, method: str) -> None:
            parts = urlsplit(self.path)
            path, query = unquote(parts.path), parse_qs(parts.query)
            with hub.lock:
                hub.requests.append({"role": role, "method": method, "path": path, "range": self.headers.get("Range"),
                                     "auth": self._token() is not None})
            if role == "cdn":
                m = re.fullmatch(r"/blobs/([0-9a-f]{64})", path)
                f = hub.blob(m.group(1)) if m else None
                return self._body(f) if f else self._error(404, None, "no such blob")
            if path == "/api/whoami-v2":
                name = hub.tokens.get(self._token() or "")
                if not name:
                    return self._error(401, None, "Invalid credentials in Authorization header")
                return self._json({"type": "user", "name": name, "fullname": name,
                                   "auth": {"type": "access_token",
                                            "accessToken": {"displayName": f"{name}-read", "role": "read"}}})
            if path == "/api/models":
                return self._search(query)
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/(revision|tree)/([^/]+)(/.*)?)?", path)
            if m:
                return self._api_repo(m.group(1), m.group(2), m.group(3), query)
            m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if m:
                return self._resolve(m.group(1), m.group(2), m.group(3))
            self._error(404, None, f"fakehub: no route for {method} {path}")

        def _search(self, query: dict) -> None:
            q = (query.get("search") or [""])[0].lower()
            limit = int((query.get("limit") or ["1000"])[0])
            hits = [r for r in hub.repos.values() if q in r.id.lower()]
            hits.sort(key=lambda r: -r.downloads)
            out = []
            for r in hits[:limit]:
                d = r.info(blobs=False)
                d.pop("siblings")
                out.append(d)
            self._json(out)

        def _repo_or_error(self, repo_id: str, rev: str | None):
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return None, None
            commit = repo.commit(rev)
            if commit is None:
                self._error(404, "RevisionNotFound", "Invalid rev id: " + str(rev))
                return None, None
            return repo, commit

        def _api_repo(self, repo_id: str, kind: str | None, rev: str | None, query: dict) -> None:
            repo, commit = self._repo_or_error(repo_id, rev)
            if repo is None:
                return
            if kind == "tree":
                if repo.gated and self._token() not in repo.granted:
                    return self._gate(repo)
                return self._json(repo.tree())
            d = repo.info(blobs=(query.get("blobs") or ["false"])[0].lower() == "true")
            d["sha"] = commit
            self._json(d)

        def _gate(self, repo: FakeRepo) -> None:
            token = self._token()
            if token in hub.tokens:
                return self._error(403, "GatedRepo", f"Access to model {repo.id} is restricted and you are not in "
                                   f"the authorized list. Visit {hub.url}/{repo.id} to ask for access.")
            self._error(401, "GatedRepo", f"Access to model {repo.id} is restricted. You must have access to it "
                        "and be authenticated to access it. Please log in.")

        def _resolve(self, repo_id: str, rev: str, filename: str) -> None:
            repo, commit = self._repo_or_error(repo_id, rev)
            if repo is None:
                return
            if repo.gated and self._token() not in repo.granted:
                return self._gate(repo)
            f = repo.files.get(filename)
            if f is None:
                return self._error(404, "EntryNotFound", f"{filename} does not exist on {rev}",
                                   {"X-Repo-Commit": commit})
            common = {"X-Repo-Commit": commit, "ETag": f'"{f.etag}"', "Accept-Ranges": "bytes"}
            if f.lfs:
                # the Hub answers LFS files with a redirect to its CDN, carrying the real size and hash
                loc = f"{hub.cdn_url}/blobs/{f.sha256}"
                return self._send(302, b"", {**common, "Location": loc, "X-Linked-Etag": f'"{f.sha256}"',
                                             "X-Linked-Size": str(f.size)}, ctype="text/plain")
            self._body(f, common)

        def _body(self, f: FakeFile, extra: dict | None = None) -> None:
            start, end = 0, f.size
            rng = self.headers.get("Range")
            status = 200
            if rng:
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
                if not m or int(m.group(1)) >= f.size:
                    return self._send(416, b"", {"Content-Range": f"bytes */{f.size}"})
                start = int(m.group(1))
                end = min(int(m.group(2)) + 1, f.size) if m.group(2) else f.size
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(end - start))
            self.send_header("ETag", f'"{f.etag}"')
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{f.size}")
            for k, v in (extra or {}).items():
                if k not in ("ETag", "Accept-Ranges"):
                    self.send_header(k, v)
            self.end_headers()
            if self.command == "HEAD":
                return
            with hub.lock:
                drop = hub.drop_after.pop(f.name, None)
            throttle = hub.throttle_bps
            if f.path is not None and drop is None and not throttle:
                with open(f.path, "rb") as fh:  # zero-copy, so the benchmark measures the client
                    sent = self.connection.sendfile(fh, start, end - start)
                with hub.lock:
                    hub.bytes_served[f.name] += sent
                return
            pos, t0, sent, gen = start, time.monotonic(), 0, hub.generation
            limit = end if drop is None else min(end, start + drop)
            try:
                while pos < limit:
                    chunk = f.read(pos, min(limit, pos + 65536))
                    self.wfile.write(chunk)
                    pos += len(chunk)
                    sent += len(chunk)
                    with hub.lock:
                        if hub.generation == gen:
                            hub.bytes_served[f.name] += len(chunk)
                    if throttle:
                        ahead = sent / throttle - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
            except (BrokenPipeError, ConnectionResetError):
                pass
            if drop is not None and limit < end:  # cut the connection mid-file, like a flaky link
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    return Handler


def main() -> int:
    """Serve a repo of large random files for bench/download.py; prints READY <endpoint> and waits for stdin EOF."""
    p = argparse.ArgumentParser()
    p.add_argument("--mb", type=int, default=300, help="total size of the weight files")
    p.add_argument("--files", type=int, default=3, help="number of weight files")
    p.add_argument("--dir", required=True, help="where to write the generated files")
    p.add_argument("--repo", default="bench/big-model")
    a = p.parse_args()
    d = Path(a.dir)
    d.mkdir(parents=True, exist_ok=True)
    files = {}
    per = a.mb * 1024 * 1024 // a.files
    for i in range(a.files):
        path = d / f"model-{i + 1:05d}-of-{a.files:05d}.safetensors"
        if not path.exists() or path.stat().st_size != per:
            with open(path, "wb") as fh:
                for _ in range(per // (1 << 20)):
                    fh.write(os.urandom(1 << 20))
                fh.write(os.urandom(per % (1 << 20)))
        files[path.name] = FakeFile(path.name, path=path, lfs=True)
    for f in tiny_llama_files(1000, with_bin=False).values():
        if not f.name.endswith(".safetensors"):
            files[f.name] = f
    hub = FakeHub([FakeRepo(a.repo, files)]).start()
    print(f"READY {hub.url}", flush=True)
    sys.stdin.read()
    hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
