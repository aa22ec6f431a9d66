"""Entry points: `tunedoc` (no arguments) opens the app; `tunedoc serve` serves it in a browser."""

from __future__ import annotations

from tunedoc.child import python_m, shell_command

import argparse
import os
import re
import secrets
import shlex
import sys
import tempfile
from pathlib import Path


def app_main(argv: list[str] | None = None) -> int:
    """Run the Textual app in this terminal; returns the exit code."""
    from tunedoc.tui.app import make_app

    app = make_app()
    app.run()
    return app.return_code or 0


def serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="localhost",
                        help="address to listen on (default localhost: only this machine can connect; 0.0.0.0 "
                             "lets every machine that can reach this one connect, and whoever has the token can "
                             "then run commands here)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--public-url", default=None,
                        help="the URL people use to reach the server behind a proxy or tunnel, e.g. "
                             "https://box.example/tunedoc; the printed URL, the cookie and the websocket's Origin "
                             "check follow it")
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token", default=None,
                       help=f"a fixed access token (at least 22 characters) instead of a new random one each "
                            f"start; the TUNEDOC_SERVE_TOKEN variable does the same without showing it in `ps`")
    token.add_argument("--no-token", action="store_true",
                       help="no token (only with a loopback --host: then every user of this machine can open it)")


def serve_main(args: argparse.Namespace) -> int:
    """Serve the app with textual-serve behind a token (tui/serve.py): each browser tab runs its own
    `python -m tunedoc.tui` process."""
    try:
        from tunedoc.tui.serve import TOKEN_ENV, GuardedServer, check_token, is_loopback
    except ModuleNotFoundError as error:
        if error.name not in ("textual_serve", "aiohttp", "aiohttp_jinja2"):
            raise
        print("tunedoc serve needs textual-serve: pip install textual-serve", file=sys.stderr)
        return 1
    if not 0 < args.port < 65536:
        print(f"--port {args.port}: give a port between 1 and 65535", file=sys.stderr)
        return 2
    # Read the token and take it out of the environment the app's processes inherit.
    env_token = os.environ.pop(TOKEN_ENV, None) or None
    if args.no_token:
        if not is_loopback(args.host):
            print(f"--no-token needs a loopback --host (localhost or 127.0.0.1): on {args.host} other machines "
                  "could open the app and run commands here", file=sys.stderr)
            return 2
        token = None
        print("warning: --no-token: every user and program on this machine (and anything a proxy forwards here) "
              "can open the app and run commands as you", file=sys.stderr)
    else:
        token = args.token or env_token or secrets.token_urlsafe(32)
        problem = check_token(token)
        if problem:
            source = "--token" if args.token else TOKEN_ENV
            print(f"{source}: {problem}", file=sys.stderr)
            return 2
    if args.public_url and not args.public_url.startswith(("http://", "https://")):
        print(f"--public-url {args.public_url}: give a URL starting with http:// or https://", file=sys.stderr)
        return 2
    command = shell_command(python_m("tunedoc.tui"))
    with tempfile.TemporaryDirectory(prefix="tunedoc-serve-") as tmp:
        templates = tmp if _offline_template(Path(tmp)) else None
        GuardedServer(command, host=args.host, port=args.port, token=token, public_url=args.public_url,
                      templates_path=templates).serve()
    return 0


def _offline_template(dest: Path) -> bool:
    """textual-serve's page with its Google Fonts stylesheet removed: where fonts.googleapis.com is blocked or slow
    (mainland China, offline labs) that render-blocking request holds the page back. The terminal font falls back
    to the browser's monospace. False (use the stock page) when the template is not where we expect it."""
    import textual_serve

    src = Path(textual_serve.__file__).parent / "templates" / "app_index.html"
    try:
        html = src.read_text(encoding="utf-8")
    except OSError:
        return False
    html = re.sub(r"<link[^>]*fonts\.googleapis\.com[^>]*>", "", html, flags=re.S)
    (dest / "app_index.html").write_text(html, encoding="utf-8")
    return True
