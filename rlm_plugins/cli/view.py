"""`rlm-plugins view`: turn a JSONL run log into one self-contained HTML page, or serve a directory of logs."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path
from typing import Any

from rlm_plugins.errors import ConfigurationError


def register(commands: Any) -> None:
    """Add the `view` subcommand."""
    cmd = commands.add_parser(
        "view",
        help="open a JSONL trajectory log as one HTML page (or --serve a log directory)",
        description="Write LOG as one self-contained HTML page (no server, no network: it works offline and as an "
        "attachment). With --serve, serve a directory of logs on 127.0.0.1; open pages refresh while a run writes.",
    )
    cmd.add_argument("log", nargs="?", help="a JSONL log (ours or the official rlms one); with --serve, a directory")
    cmd.add_argument("--out", help="where to write the page (default: the log's path with .html)")
    cmd.add_argument("--open", action="store_true", help="open the page in the default browser")
    cmd.add_argument("--serve", action="store_true", help="serve LOG's directory (default: ./rlm_logs) instead")
    cmd.add_argument("--host", default="127.0.0.1", help="with --serve: the address to listen on (default: 127.0.0.1)")
    cmd.add_argument("--port", type=int, default=8765, help="with --serve: the port (default: 8765; 0 picks one)")
    cmd.set_defaults(handler=view)


def view(args: argparse.Namespace) -> int:
    """Write the page (or serve), checking the paths first."""
    if args.serve:
        return _serve(args)
    if not args.log:
        raise ConfigurationError("view needs a LOG.jsonl to show (or --serve DIR to watch a directory)")
    log = Path(args.log)
    if not log.is_file():
        raise ConfigurationError(f"{args.log!r} is not a log file; pass a .jsonl file written with --log-dir")
    from rlm_plugins.viewer.page import write_html

    page = write_html(log, args.out)
    print(page)
    if args.open:
        webbrowser.open(page.resolve().as_uri())
    return 0


def _serve(args: argparse.Namespace) -> int:
    from rlm_plugins.viewer.serve import serve

    directory = Path(args.log or "rlm_logs")
    if directory.is_file():
        directory = directory.parent
    serve(directory, args.host, args.port, open_browser=args.open)
    return 0
