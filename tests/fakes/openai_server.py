"""A scripted OpenAI-compatible chat server on 127.0.0.1 for the real `openai`, `litellm` and LangChain clients.

Replies come from a script: a list of strings (or reply dicts) consumed in order, or a callable given each request's
JSON body. A reply dict may set `content`, `tool_calls`, `usage` (merged over the computed one; `None` drops the field),
`finish_reason`, `status` with `message` (an OpenAI-style error response), `headers` (added to the response, e.g.
`Retry-After`) and `delay` (seconds before answering).

Example:
    >>> with ScriptedOpenAIServer(["Hello!"]) as server:  # doctest: +SKIP
    ...     OpenAI(base_url=server.base_url, api_key="sk-test").chat.completions.create(model="m", messages=[...])
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = str | dict[str, Any]
Script = Sequence[Reply] | Callable[[dict[str, Any]], Reply]

CREATED = 1_700_000_000
"""Fixed `created` timestamp, so responses (and cassettes) are the same on every run."""
MAX_DELAY = 30.0
MAX_BODY = 32 * 1024 * 1024
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_denied", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_exceeded", "rate_limit_exceeded"),
}


def count_tokens(text: str) -> int:
    """Deterministic stand-in for a tokenizer: one token per 4 characters, rounded up."""
    return (len(text) + 3) // 4


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _normalise_tool_calls(tool_calls: list[dict[str, Any]], call_id: str) -> list[dict[str, Any]]:
    """Accept OpenAI-shaped tool calls or the shorthand `{"name": ..., "arguments": {...}}`."""
    result = []
    for index, call in enumerate(tool_calls):
        function = call.get("function", call)
        arguments = function.get("arguments", {})
        result.append(
            {
                "id": call.get("id", f"call_{call_id}_{index}"),
                "type": "function",
                "function": {
                    "name": function["name"],
                    "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                },
            }
        )
    return result


def _pieces(text: str) -> list[str]:
    """Split text into stream deltas: one word and its trailing whitespace each."""
    return re.findall(r"\s*\S+\s*|\s+", text) or [text]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    owner: ScriptedOpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about connections that clients (or `close()`) dropped mid-request."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 10.0

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms delayed-ACK stalls
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            owner = self.server.owner
            models = [{"id": m, "object": "model", "created": CREATED, "owned_by": "scripted"} for m in owner.models]
            self._send_json(200, {"object": "list", "data": models})
        else:
            self._send_error(404, f"no route GET {self.path}; the scripted server serves /v1/models")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._send_error(413, f"request body of {length} bytes is over {MAX_BODY}")
            return
        raw = self.rfile.read(length) if length else b""
        if self.path.split("?")[0].rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._send_error(404, f"no route POST {self.path}; the scripted server serves /v1/chat/completions")
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError as exc:
            self._send_error(400, f"request body is not JSON: {exc}")
            return
        owner = self.server.owner
        index = owner._record(body, {k.lower(): v for k, v in self.headers.items()})
        reply = owner._reply_for(body)
        delay = min(float(reply.get("delay") or 0.0), MAX_DELAY)
        if delay and owner._stopping.wait(delay):
            return
        status = int(reply.get("status") or 200)
        headers = {str(k): str(v) for k, v in (reply.get("headers") or {}).items()}
        if status >= 400:
            self._send_error(status, str(reply.get("message") or HTTPStatus(status).phrase), headers)
            return
        completion = _completion(body, reply, f"scripted-{index}")
        if body.get("stream"):
            self._send_stream(body, completion)
        else:
            self._send_json(200, completion, headers)

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        kind, code = _ERROR_TYPES.get(status, ("server_error", None))
        error = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        self._send_json(status, error, headers)

    def _send_stream(self, body: dict[str, Any], completion: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        for chunk in _stream_chunks(completion, include_usage):
            self._write_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _completion(body: dict[str, Any], reply: dict[str, Any], completion_id: str) -> dict[str, Any]:
    """Build a non-streaming chat.completion object from a reply dict."""
    content = reply.get("content")
    tool_calls = _normalise_tool_calls(reply.get("tool_calls") or [], completion_id)
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    prompt_text = "".join(_message_text(m) for m in body.get("messages") or [] if isinstance(m, dict))
    output_text = (content or "") + "".join(c["function"]["name"] + c["function"]["arguments"] for c in tool_calls)
    prompt_tokens, completion_tokens = count_tokens(prompt_text), count_tokens(output_text)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    finish_reason = reply.get("finish_reason") or ("tool_calls" if tool_calls else "stop")
    completion = {
        "id": f"chatcmpl-{completion_id}",
        "object": "chat.completion",
        "created": CREATED,
        "model": body.get("model") or "scripted",
        "system_fingerprint": "fp_scripted",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
    }
    if "usage" not in reply:
        completion["usage"] = usage
    elif reply["usage"] is not None:
        completion["usage"] = {**usage, **reply["usage"]}
    return completion


def _stream_chunks(completion: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
    """The chat.completion.chunk objects of a completion, as OpenAI streams them."""
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    choice = completion["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in _pieces(message["content"]) if message["content"] else []:
        yield chunk({"content": piece})
    for index, call in enumerate(message.get("tool_calls") or []):
        yield chunk({"tool_calls": [{"index": index, **call}]})
    yield chunk({}, choice["finish_reason"])
    if include_usage and "usage" in completion:
        yield {**base, "choices": [], "usage": completion["usage"]}


class ScriptedOpenAIServer:
    """An OpenAI-compatible `/v1/chat/completions` and `/v1/models` server that answers from a script.

    Args:
        script: Replies consumed in order (a list exhausted answers HTTP 500 saying so), or a callable from the
            request JSON to a reply. A reply is the assistant's text or a dict (see the module docstring).
        models: The model ids `GET /v1/models` lists.
    """

    def __init__(self, script: Script, *, models: Sequence[str] = ("scripted-model",)) -> None:
        self.models = list(models)
        self._callable = script if callable(script) else None
        self._replies = iter([]) if callable(script) else iter(list(script))
        self._script_size = 0 if callable(script) else len(script)
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._headers: list[dict[str, str]] = []
        self._errors: list[str] = []
        self._counter = itertools.count()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ScriptedOpenAIServer:
        """Bind a free port on 127.0.0.1 and serve from a daemon thread."""
        if self._server is not None:
            return self
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="scripted-openai", daemon=True
        )
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving, drop open keep-alive connections and join the serving thread (bounded by `timeout`)."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        while self._connections and time.monotonic() < deadline:
            time.sleep(0.01)
        self._server = None

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            msg = "the server is not running: use it as a context manager or call start() first"
            raise RuntimeError(msg)
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """The OpenAI `base_url` / litellm `api_base`: `http://127.0.0.1:PORT/v1`."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """JSON bodies of the chat-completion requests received so far, in arrival order (a snapshot)."""
        with self._lock:
            return list(self._requests)

    @property
    def headers(self) -> list[dict[str, str]]:
        """Headers of those requests (lower-case names), parallel to `requests`."""
        with self._lock:
            return list(self._headers)

    @property
    def errors(self) -> list[str]:
        """Script problems answered with HTTP 500 (an exhausted list, a callable that raised)."""
        with self._lock:
            return list(self._errors)

    def _record(self, body: dict[str, Any], headers: dict[str, str]) -> int:
        with self._lock:
            self._requests.append(body)
            self._headers.append(headers)
            return next(self._counter)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _reply_for(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            if self._callable is not None:
                reply = self._callable(body)
            else:
                with self._lock:
                    reply = next(self._replies, None)
                if reply is None:
                    msg = f"ScriptedOpenAIServer: script exhausted: all {self._script_size} replies were used"
                    raise LookupError(msg)
        except Exception as exc:
            message = str(exc) if isinstance(exc, LookupError) else f"script callable raised {exc!r}"
            with self._lock:
                self._errors.append(message)
            return {"status": 500, "message": message}
        return {"content": reply} if isinstance(reply, str) else dict(reply)
