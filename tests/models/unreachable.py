"""Endpoints that fail the ways a blocked or offline Hub fails, on 127.0.0.1, for the error-message and doctor tests.

    with failing("timeout") as url: ...   # accepts the connection, never answers (a firewall dropping packets)
    with failing("refused") as url: ...   # nothing listens on the port
    with failing("reset") as url: ...     # https://: reads the TLS ClientHello, then resets the connection (RST),
                                          # as firewalls that filter on the server name do
    with failing("dns") as url: ...       # a name under .invalid, which never resolves (RFC 6761)
    with answering() as url: ...          # answers 200 to anything, also as an HTTP proxy (absolute-URI requests)
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = ("timeout", "refused", "reset", "dns")


@contextlib.contextmanager
def failing(kind: str):
    if kind == "dns":
        yield "http://tunedoc-unreachable.invalid"
        return
    if kind == "refused":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # the port was free a moment ago and nothing listens on it now
        yield f"http://127.0.0.1:{port}"
        return
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)  # the kernel completes the handshakes of the backlog: connect succeeds, no answer comes
    port = server.getsockname()[1]
    stop = threading.Event()
    if kind == "reset":
        def loop() -> None:
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                try:
                    conn.settimeout(2)
                    conn.recv(4096)  # the ClientHello
                except OSError:
                    pass
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
                conn.close()

        threading.Thread(target=loop, daemon=True).start()
    elif kind != "timeout":
        raise ValueError(kind)
    try:
        yield f"{'https' if kind == 'reset' else 'http'}://127.0.0.1:{port}"
    finally:
        stop.set()
        server.close()


@contextlib.contextmanager
def answering(status: int = 200, headers: dict[str, str] | None = None):
    """An HTTP server that answers `status` (with `headers`) and a small JSON body to any GET/HEAD; it also works as a
    plain HTTP proxy, since it answers absolute-URI requests the same way. `.requests` lists the request lines it
    got."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.requestline)
            body = b"[]"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_GET

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        yield _Url(url, seen)
    finally:
        httpd.shutdown()
        httpd.server_close()


class _Url(str):
    """The server's URL (a str) that also carries the request lines it received."""

    def __new__(cls, url: str, requests: list[str]):
        self = super().__new__(cls, url)
        self.requests = requests
        return self
