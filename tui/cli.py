"""Entry points: `tunedoc` (no arguments) opens the app; `tunedoc serve` serves it in a browser."""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import tempfile
from pathlib import Path


def app_main(argv: list[str] | None = None) -> int:
    """Run the Textual app in this terminal; returns the exit code."""
    from tui.app import make_app

    app = make_app()
    app.run()
    return app.return_code or 0


def serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="localhost",
                        help="address to listen on (default localhost; 0.0.0.0 exposes it to your network: "
                             "anyone who can reach it gets a shell-level view of this machine)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--public-url", default=None,
                        help="the URL people use to reach the server, when behind a proxy or tunnel")


def serve_main(args: argparse.Namespace) -> int:
    """Serve the app with textual-serve: each browser tab runs its own `python -m tui` process."""
    try:
        from textual_serve.server import Server
    except ImportError:
        print("tunedoc serve needs textual-serve: pip install textual-serve", file=sys.stderr)
        return 1
    if not 0 < args.port < 65536:
        print(f"--port {args.port}: give a port between 1 and 65535", file=sys.stderr)
        return 2
    command = f"{shlex.quote(sys.executable)} -m tui"
    print(f"Serving tunedoc on http://{args.host}:{args.port} (Ctrl+C stops)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="tunedoc-serve-") as tmp:
        extra = {"templates_path": tmp} if _offline_template(Path(tmp)) else {}
        Server(command, host=args.host, port=args.port, title="tunedoc", public_url=args.public_url,
               **extra).serve()
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
