"""A scripted Anthropic Messages API (`POST /v1/messages`) on 127.0.0.1, for the real `anthropic` SDK.

Each reply is the assistant's text or a dict with `text` and `usage` (merged over the computed usage, so a test
can report `cache_read_input_tokens`); requests are recorded as JSON bodies.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.openai_server import count_tokens

Reply = str | dict[str, Any]


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(block.get("text", "") for block in content if isinstance(block, dict))
    return content if isinstance(content, str) else ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        owner: ScriptedAnthropicServer = self.server.owner
        reply = owner._next(body)
        prompt = _text(body.get("system")) + "".join(_text(m.get("content")) for m in body.get("messages", []))
        text = reply.get("text", "")
        usage = {"input_tokens": count_tokens(prompt), "output_tokens": count_tokens(text)}
        usage.update(reply.get("usage") or {})
        payload = {
            "id": "msg_scripted",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ScriptedAnthropicServer:
    """Answers `POST /v1/messages` from a list of replies (or a callable from the request body to a reply)."""

    def __init__(self, script: Sequence[Reply] | Callable[[dict[str, Any]], Reply]) -> None:
        self._script = script if callable(script) else iter(list(script))
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None

    def _next(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.requests.append(body)
            reply = self._script(body) if callable(self._script) else next(self._script, "script exhausted")
        return {"text": reply} if isinstance(reply, str) else dict(reply)

    def __enter__(self) -> ScriptedAnthropicServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        """The `anthropic` SDK's `base_url` (it appends `/v1/messages`)."""
        assert self._server is not None, "use the server as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}"
