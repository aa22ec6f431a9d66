"""A stand-in ModelScope server for tests: the few endpoints the `modelscope` library (modelscope-hub) calls for
search, model info, the file list and file downloads (with HTTP Range, so resume can be tested), in ModelScope's
own envelopes (`{"success": ..., "data": ...}` on /openapi/v1, `{"Code", "Data", "Success"}` on /api/v1). Point the
library at it with MODELSCOPE_DOMAIN=http://127.0.0.1:PORT.

    with FakeModelScope({"Qwen/Tiny": {"config.json": b"{...}", "model.safetensors": b"..."}}) as ms:
        env["MODELSCOPE_DOMAIN"] = ms.url
    ms.slow = 0.01       # seconds per 64 KiB chunk: time to kill a download half way
    ms.requests          # [(method, path, range header)]
"""
from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from urllib.parse import parse_qs, unquote, urlparse


class FakeModelScope:
    def __init__(self, repos: dict[str, dict[str, bytes]], meta: dict[str, dict] | None = None):
        self.repos = repos
        self.meta = meta or {}
        self.slow = 0.0
        self.requests: list[tuple[str, str, str | None]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):  # noqa: C901 - one small router
                url = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.requests.append(("GET", self.path, self.headers.get("Range")))
                parts = [unquote(p) for p in url.path.strip("/").split("/")]
                if parts[:3] == ["openapi", "v1", "models"] and len(parts) == 3:
                    words = (q.get("search") or "").lower()
                    hits = [fake.info(r) for r in fake.repos if words in r.lower()]
                    return self._json(200, {"success": True, "data": {"models": hits, "total_count": len(hits),
                                                                      "page_number": 1, "page_size": 10}})
                if parts[:3] in (["openapi", "v1", "models"], ["api", "v1", "models"]) and len(parts) == 5:
                    repo = f"{parts[3]}/{parts[4]}"
                    if repo not in fake.repos:
                        return self._missing(parts[0] == "openapi")
                    info = fake.info(repo)
                    if parts[0] == "openapi":
                        return self._json(200, {"success": True, "data": info})
                    return self._json(200, {"Code": 200, "Success": True, "Data": info})
                if parts[:3] == ["api", "v1", "models"] and len(parts) >= 6 and parts[5] == "repo":
                    repo = f"{parts[3]}/{parts[4]}"
                    if repo not in fake.repos:
                        return self._missing(False)
                    files = fake.repos[repo]
                    if len(parts) == 7 and parts[6] == "files":
                        listing = [{"Name": p.rsplit("/", 1)[-1], "Path": p, "Type": "blob", "Size": len(b),
                                    "Sha256": hashlib.sha256(b).hexdigest(), "Revision": "c0ffee"}
                                   for p, b in files.items()]
                        return self._json(200, {"Code": 200, "Success": True, "Data": {"Files": listing}})
                    path = q.get("FilePath")
                    if path not in files:
                        return self._missing(False)
                    return self._file(files[path])
                return self._missing(parts[:1] == ["openapi"])

            def _missing(self, openapi: bool) -> None:
                if openapi:
                    return self._json(404, {"success": False, "code": "NotFound", "message": "not found"})
                return self._json(404, {"Code": 10010205001, "Success": False, "Message": "model not found"})

            def _file(self, body: bytes) -> None:
                start, end = 0, len(body) - 1
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    a, _, b = rng[6:].partition("-")
                    start = int(a or 0)
                    end = min(int(b), len(body) - 1) if b else len(body) - 1
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(end - start + 1))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if self.command == "HEAD":
                    return
                pos = start
                try:
                    while pos <= end:
                        chunk = body[pos:min(end + 1, pos + 65536)]
                        self.wfile.write(chunk)
                        pos += len(chunk)
                        if fake.slow:
                            time.sleep(fake.slow)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def info(self, repo: str) -> dict:
        owner, name = repo.split("/", 1)
        size = sum(len(b) for b in self.repos[repo].values())
        return {"id": repo, "owner": owner, "name": name, "downloads": 1234, "likes": 5, "license": "Apache License 2.0",
                "tags": ["text-generation"], "file_size": size, "private": False, "gated": False,
                "last_modified": "2026-01-02T03:04:05Z", **self.meta.get(repo, {})}

    def __enter__(self) -> "FakeModelScope":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
