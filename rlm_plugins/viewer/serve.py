"""`serve`: a small stdlib HTTP server over a directory of JSONL logs; open pages refresh while runs write."""

from __future__ import annotations

import html
import json
import os
import threading
import time
import urllib.parse
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.viewer._html import asset, render_page
from rlm_plugins.viewer._model import load_log

POLL_MS = 2000


def make_server(log_dir: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """A server (not yet serving) for the logs in `log_dir`; port 0 picks a free port."""
    root = Path(log_dir).resolve()
    if not root.is_dir():
        raise ConfigurationError(f"--serve needs a directory of logs; {str(log_dir)!r} is not one")

    class Handler(_Handler):
        directory = root

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise ConfigurationError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port") from None


def serve(
    log_dir: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8765, open_browser: bool = False
) -> None:
    """Serve `log_dir` until interrupted; `open_browser` opens the newest log."""
    server = make_server(log_dir, host, port)
    url = f"http://{host}:{server.server_address[1]}/"
    print(f"rlm-plugins: serving the logs in {log_dir} at {url} (Ctrl+C stops)", flush=True)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url + "latest",)).start()
    try:
        server.serve_forever()
    finally:
        server.server_close()


def logs(directory: Path) -> list[Path]:
    """The JSONL logs in `directory`, newest first."""
    found = [p for p in directory.glob("*.jsonl") if p.is_file()]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def version(path: Path) -> str:
    """Changes whenever the log grows or is rewritten."""
    stat = path.stat()
    return f"{stat.st_size}-{stat.st_mtime_ns}"


class _Handler(BaseHTTPRequestHandler):
    directory: Path

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one line per request would drown the server's own output."""

    def do_GET(self) -> None:
        path = urllib.parse.urlparse(self.path).path
        route, _, name = path.lstrip("/").partition("/")
        name = urllib.parse.unquote(name)
        if route == "":
            return self._send(200, "text/html", self._index())
        if route == "favicon.ico":
            return self._send(204, "image/x-icon", "")
        if route == "latest":
            found = logs(self.directory)
            if not found:
                return self._send(404, "text/plain", "no logs yet: refresh once a run has started")
            return self._redirect(f"/view/{urllib.parse.quote(found[0].name)}")
        log = self._log(name)
        if log is None:
            return self._send(404, "text/plain", f"no log named {name!r} here")
        if route == "view":
            live = {"url": f"/data/{urllib.parse.quote(log.name)}", "interval": POLL_MS, "version": version(log)}
            return self._send(200, "text/html", render_page(load_log(log), live))
        if route == "data":
            payload = {"version": version(log), "data": load_log(log)}
            return self._send(200, "application/json", json.dumps(payload, default=str))
        return self._send(404, "text/plain", "unknown page")

    def _log(self, name: str) -> Path | None:
        if not name or "/" in name or "\\" in name or name.startswith(".") or not name.endswith(".jsonl"):
            return None
        path = self.directory / name
        return path if path.is_file() else None

    def _index(self) -> str:
        items = []
        for log in logs(self.directory):
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(log.stat().st_mtime))
            link = f"/view/{urllib.parse.quote(log.name)}"
            items.append(
                f'<li><a href="{html.escape(link)}">{html.escape(log.name)}</a>'
                f'<span class="meta">{when}, {log.stat().st_size:,} bytes</span></li>'
            )
        page = asset("index.html").replace("/*RLM:DIR*/", html.escape(str(self.directory)))
        return page.replace("/*RLM:ITEMS*/", "".join(items) or "<li>no logs yet</li>")

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.end_headers()

    def _send(self, status: int, kind: str, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)
