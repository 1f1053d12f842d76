"""SDK clients pooled per endpoint and key: one sync client per process, one async client per event loop (an
async HTTP pool belongs to the loop that opened its connections), so later calls reuse warm keep-alive sockets."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Any

Endpoint = tuple[str | None, str | None]
"""(base URL, API key); None means the SDK's default."""


class ClientPool:
    """Builds each client once, with `make_sync(base_url, api_key)` / `make_async(base_url, api_key)`."""

    def __init__(self, make_sync: Callable[[str | None, str | None], Any], make_async: Callable[..., Any]) -> None:
        self._make_sync = make_sync
        self._make_async = make_async
        self._lock = threading.Lock()
        self._sync: dict[Endpoint, Any] = {}
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Endpoint, Any]] = (
            weakref.WeakKeyDictionary()
        )

    def sync(self, endpoint: Endpoint) -> Any:
        """The process's sync client for `endpoint`."""
        with self._lock:
            client = self._sync.get(endpoint)
            if client is None:
                client = self._sync[endpoint] = self._make_sync(*endpoint)
        return client

    def for_loop(self, endpoint: Endpoint) -> Any:
        """The running event loop's async client for `endpoint`."""
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._async.setdefault(loop, {})
            client = clients.get(endpoint)
            if client is None:
                client = clients[endpoint] = self._make_async(*endpoint)
        return client
