"""Request limits: the body size (read into a temporary file, never held twice) and concurrent runs (a queue)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request

from rlm_plugins.server.errors import APIError

_SPOOL = 1024 * 1024
"""Bodies up to this size stay in memory; larger ones go to a temporary file as they arrive."""


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request body as JSON; 413 when it is larger than `max_bytes`, 400 when it is not JSON."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL) as spool:
        size = 0
        async for piece in request.stream():
            size += len(piece)
            if size > max_bytes:
                raise _too_large(max_bytes)
            spool.write(piece)
        spool.seek(0)
        try:
            return json.load(spool)
        except (ValueError, UnicodeDecodeError) as exc:
            raise APIError(400, f"the request body is not valid JSON ({exc})", code="invalid_json") from None


def _too_large(max_bytes: int) -> APIError:
    msg = f"the request body is larger than this server's limit of {max_bytes:,} bytes (max_body_bytes)"
    return APIError(413, msg, code="request_too_large")


class RunLimiter:
    """At most `limit` runs at once; up to `queue` more wait up to `timeout` seconds, the rest get 429."""

    def __init__(self, limit: int, queue: int, timeout: float) -> None:
        self.limit = limit
        self.queue = queue
        self.timeout = timeout
        self.running = 0
        self.waiting = 0
        self._free = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one run slot for the block; raises a 429 `APIError` with Retry-After when none frees in time."""
        async with self._free:
            if self.running >= self.limit:
                if self.waiting >= self.queue:
                    raise self._busy()
                self.waiting += 1
                try:
                    await asyncio.wait_for(self._free.wait_for(lambda: self.running < self.limit), self.timeout)
                except asyncio.TimeoutError:
                    raise self._busy() from None
                finally:
                    self.waiting -= 1
            self.running += 1
        try:
            yield
        finally:
            async with self._free:
                self.running -= 1
                self._free.notify()

    def _busy(self) -> APIError:
        retry = str(max(1, math.ceil(self.timeout)))
        msg = f"the server is running its maximum of {self.limit} runs and its queue is full; retry later"
        return APIError(429, msg, code="too_many_runs", headers={"Retry-After": retry})
