"""ASGI middleware: a request id for every request (the client's `X-Request-ID` or a new one), echoed in the
response and carried by every log line, plus one access log line and the request counter."""

from __future__ import annotations

import time
from typing import Any

from rlm_plugins.server.logs import LOGGER, new_request_id, request_id
from rlm_plugins.server.metrics import Metrics

PATHS = {"/v1/chat/completions", "/v1/models", "/healthz", "/readyz", "/metrics"}


class RequestContext:
    """Wraps the app: request id, access log, request metrics (pure ASGI, so streaming and disconnects pass)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = new_request_id(headers.get(b"x-request-id", b"").decode("latin-1"))
        token = request_id.set(rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = scope.get("path", "")
            self.metrics.requests.labels(path if path in PATHS else "other", str(status)).inc()
            LOGGER.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": path,
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id.reset(token)
