"""SDK clients pooled per endpoint and key: one sync client per process, one async client per event loop (an
async HTTP pool belongs to the loop that opened its connections), so later calls reuse warm keep-alive sockets."""

from __future__ import annotations

import asyncio
import importlib
import threading
import weakref
from typing import Any

Endpoint = tuple[str | None, str | None]
"""(base URL, API key); None means the SDK's default."""


class ClientPool:
    """Builds each client of an SDK (`openai`, `anthropic`) once, with the SDK's own retries off.

    Async clients get the SDK's plain `DefaultAsyncHttpxClient`, not the wrapper whose `__del__` schedules
    `aclose()` on whatever loop runs when it is collected: a client of a closed loop is then dropped quietly.
    """

    def __init__(self, module: str, sync_class: str, async_class: str) -> None:
        self._module = module
        self._classes = (sync_class, async_class)
        self._lock = threading.Lock()
        self._sync: dict[Endpoint, Any] = {}
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Endpoint, Any]] = (
            weakref.WeakKeyDictionary()
        )

    def _make(self, endpoint: Endpoint, is_async: bool) -> Any:
        sdk = importlib.import_module(self._module)
        options: dict[str, Any] = {"base_url": endpoint[0], "api_key": endpoint[1], "max_retries": 0}
        if is_async:
            options["http_client"] = sdk.DefaultAsyncHttpxClient()
        return getattr(sdk, self._classes[is_async])(**options)

    def sync(self, endpoint: Endpoint) -> Any:
        """The process's sync client for `endpoint`."""
        with self._lock:
            client = self._sync.get(endpoint)
            if client is None:
                client = self._sync[endpoint] = self._make(endpoint, False)
        return client

    def for_loop(self, endpoint: Endpoint) -> Any:
        """The running event loop's async client for `endpoint`."""
        loop = asyncio.get_running_loop()
        with self._lock:
            clients = self._async.setdefault(loop, {})
            client = clients.get(endpoint)
            if client is None:
                client = clients[endpoint] = self._make(endpoint, True)
        return client
