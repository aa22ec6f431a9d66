"""`tunedoc serve`: textual-serve behind a token and an Origin check.

The served app runs commands on this machine (pip fixes, training, deleting models), so the server lets in only
whoever holds the token it printed, as Jupyter does: `/?token=T` sets an HttpOnly, SameSite=Strict cookie and
redirects to the clean URL; the page, the websocket and downloads need the cookie (or the token); `/static` (the
terminal's JS, CSS and fonts) stays open. A websocket whose `Origin` is not the server's own is refused whatever it
carries (cross-site websocket hijacking). The app's child processes never see the token: it is not in their
command line, and `TUNEDOC_SERVE_TOKEN` is removed from the environment they inherit.

textual-serve is used as it ships: a subclass adds the middleware, builds the page's URLs from the request (or
`--public-url`) and prints our start-up lines instead of its banner.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
import sys
from html import escape
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp_jinja2
from aiohttp import web
from textual_serve.server import Server

TOKEN_ENV = "TUNEDOC_SERVE_TOKEN"
MIN_TOKEN_CHARS = 22  # 22 URL-safe characters carry 132 bits; secrets.token_urlsafe(32) gives 43

REFUSAL = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>tunedoc: token needed</title>
<style>body{{background:#0c181f;color:#e8eef2;font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;
padding:0 1em}}code{{background:#12232d;padding:0 .3em}}</style></head>
<body><h1>tunedoc: {title}</h1>
<p>{reason}</p>
<p>Open the URL that <code>tunedoc serve</code> printed when it started, in the terminal where it runs: it ends in
<code>/?token=&hellip;</code>. After that, this browser remembers it until it is closed.</p>
<p>If you opened that URL from a link on another web site, reload this page.</p>
</body></html>
"""


def is_loopback(host: str) -> bool:
    """True when `host` names only this machine's loopback interface (so other machines cannot connect)."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


def all_interfaces(host: str) -> bool:
    return host.strip("[]") in ("", "0.0.0.0", "::")


def origin_of(url: str) -> str:
    """scheme://host[:port] the way a browser writes Origin: lower case, without the scheme's default port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return ""
    if port is None or (scheme, port) in (("http", 80), ("https", 443), ("ws", 80), ("wss", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def check_token(value: str) -> str | None:
    """Why `value` cannot be a token, or None when it can."""
    if len(value) < MIN_TOKEN_CHARS:
        return f"a token needs at least {MIN_TOKEN_CHARS} characters (it is the only lock on this server); " \
               f"leave --token out and one is made for you"
    if any(c.isspace() or not c.isprintable() for c in value):
        return "a token cannot contain spaces or control characters"
    return None


class GuardedServer(Server):
    """textual-serve's Server with the token, the Origin check and our start-up lines."""

    def __init__(self, command: str, *, host: str, port: int, token: str | None, public_url: str | None,
                 templates_path: str | None = None):
        extra = {"templates_path": templates_path} if templates_path else {}
        super().__init__(command, host=host, port=port, title="tunedoc", public_url=public_url, **extra)
        self.token = token
        self.given_public_url = public_url.rstrip("/") if public_url else None
        self.public_origin = origin_of(public_url) if public_url else None
        # Cookies are per host, not per port: two servers on one machine must not overwrite each other's.
        self.cookie_name = f"tunedoc-serve-{port}"
        self.cookie_path = (urlsplit(public_url).path.rstrip("/") or "/") if public_url else "/"

    # --- what is printed ---------------------------------------------------------------------------------------

    def browse_url(self, host: str | None = None) -> str:
        """The URL to open, with the token when there is one."""
        if self.given_public_url:
            base = self.given_public_url
        else:
            host = host or ("localhost" if all_interfaces(self.host) else self.host)
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"
            base = f"http://{host}:{self.port}"
        return f"{base}/?token={quote(self.token, safe='')}" if self.token else f"{base}/"

    def startup_lines(self) -> list[str]:
        bound = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        if all_interfaces(self.host):
            reach = "all interfaces: other machines on the network can connect"
        elif is_loopback(self.host):
            reach = "loopback: only this machine can connect"
        else:
            reach = "not loopback: other machines that can reach this address can connect"
        lines = [f"tunedoc serve: listening on {bound} ({reach})"]
        if self.given_public_url:
            lines.append(f"public URL: {self.given_public_url} (links, the cookie and the Origin check follow it)")
        if self.token:
            lines.append("Open this URL (it carries the access token: whoever has it can use this machine):")
        else:
            lines.append("No token (--no-token): every user and program on this machine can open the app.")
            lines.append("Open:")
        lines.append(f"    {self.browse_url()}")
        if all_interfaces(self.host) and not self.given_public_url:
            lines.append(f"    from another machine: {self.browse_url(socket.gethostname())}")
        lines.append("Ctrl+C stops.")
        return lines

    async def on_startup(self, app: web.Application) -> None:
        print("\n".join(self.startup_lines()), file=sys.stderr, flush=True)

    def initialize_logging(self) -> None:
        super().initialize_logging()
        # aiohttp's access log writes each request line, and the first request's line carries the token.
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

    # --- the guard ---------------------------------------------------------------------------------------------

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self.guard)
        return app

    def _matches(self, value: str | None) -> bool:
        return value is not None and self.token is not None and hmac.compare_digest(
            value.encode("utf-8", "surrogateescape"), self.token.encode("utf-8", "surrogateescape"))

    def allowed_origins(self, request: web.Request) -> set[str]:
        origins = {origin_of(f"{request.scheme}://{request.host}")}
        if self.public_origin:
            origins.add(self.public_origin)
        return origins

    def _host_ok(self, request: web.Request) -> bool:
        """Without a token, only loopback names reach the app: a DNS-rebound name (evil.example resolving to
        127.0.0.1) would otherwise be same-origin with itself and pass the Origin check."""
        host = (urlsplit(f"//{request.host}").hostname or "").lower()
        if self.public_origin and host == urlsplit(self.public_origin).hostname:
            return True
        try:
            return host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def refuse(self, status: int, title: str, reason: str) -> web.Response:
        return web.Response(status=status, text=REFUSAL.format(title=escape(title), reason=escape(reason)),
                            content_type="text/html",
                            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    @web.middleware
    async def guard(self, request: web.Request, handler) -> web.StreamResponse:
        resource = getattr(request.match_info.route, "resource", None)
        name = getattr(resource, "name", None)
        if name == "static":  # xterm.css, textual.js, fonts, background: the same files textual-serve ships
            return await handler(request)
        if name == "websocket":
            origin = request.headers.get("Origin")
            if origin is not None and origin_of(origin) not in self.allowed_origins(request):
                return self.refuse(403, "refused", "This connection came from another web site.")
        if self.token is None:
            if not self._host_ok(request):
                return self.refuse(403, "refused", "Without a token this server answers only to localhost.")
            return await handler(request)
        given = request.query.get("token")
        if self._matches(given):
            if name == "index":
                return self._enter(request)
            return await handler(request)
        if self._matches(request.cookies.get(self.cookie_name)):
            return await handler(request)
        if given is not None:
            return self.refuse(403, "wrong token", "The token in this address is not this server's token.")
        return self.refuse(401, "token needed", "This server lets in only whoever holds its token.")

    def _enter(self, request: web.Request) -> web.Response:
        """The right token in the address: set the cookie and send the browser to the same page without it, so the
        token leaves the address bar and the history."""
        query = urlencode([(k, v) for k, v in request.query.items() if k != "token"])
        path = f"{self.given_public_url}{request.path}" if self.given_public_url else request.path
        response = web.HTTPFound(path + (f"?{query}" if query else ""))
        response.set_cookie(self.cookie_name, self.token, path=self.cookie_path, httponly=True, samesite="Strict",
                            secure=bool(self.public_origin and self.public_origin.startswith("https")))
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    # --- the page ----------------------------------------------------------------------------------------------

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        """textual-serve's page, with its URLs on the origin the browser used (or --public-url): the websocket
        must be same-origin for the cookie to reach it, and `http://0.0.0.0:8000` is no address for a browser."""
        base = self.given_public_url or f"{request.scheme}://{request.host}"
        router = request.app.router
        scheme, rest = base.split(":", 1)
        ws_base = ("wss:" if scheme == "https" else "ws:") + rest
        font_size = request.query.get("fontsize", "16")
        context: dict[str, Any] = {
            "font_size": int(font_size) if font_size.isdigit() else 16,
            "app_websocket_url": f"{ws_base}{router['websocket'].url_for()}",
            "config": {"static": {"url": f"{base}{router['static'].url_for(filename='/')}".rstrip("/") + "/"}},
            "application": {"name": self.title},
        }
        response = aiohttp_jinja2.render_template("app_index.html", request, context)
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
