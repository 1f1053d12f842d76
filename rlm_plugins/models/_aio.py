"""aiohttp sessions for the lean HTTP transport: one per event loop, closed when that loop shuts down (synchronous
callers share `rlm_plugins._threads.SHARED_LOOP`, and so its session)."""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import threading
import weakref
from collections.abc import AsyncIterator
from typing import Any, TypeVar

T = TypeVar("T")

MAX_CONNECTIONS = 1000
"""Open connections per session at most (the `openai` SDK's default); the model limits queue calls long before."""
KEEPALIVE_SECONDS = 30.0


@functools.lru_cache(maxsize=1)
def ssl_context() -> ssl.SSLContext:
    """The TLS context for https endpoints: `certifi`'s CA bundle, as the `openai` SDK's httpx client uses,
    unless `SSL_CERT_FILE` or `SSL_CERT_DIR` name the CAs to trust."""
    if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context()
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class Session:
    """An aiohttp session and the proxies it uses, read from the environment once per endpoint.

    aiohttp's `trust_env=True` looks the proxy (and `~/.netrc`) up on a worker thread for every request; here the
    `*_proxy` / `NO_PROXY` variables are read the first time the session calls an origin, as an HTTP client
    built by the `openai` SDK reads them when it is made.
    """

    def __init__(self) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_SECONDS)
        self.http = aiohttp.ClientSession(connector=connector)
        self._proxies: dict[str, tuple[Any, Any]] = {}

    def options(self, url: str) -> dict[str, Any]:
        """Per-request options for `url`: its proxy (from the environment) and, for https, the TLS context."""
        proxy, proxy_auth = self.proxy(url)
        options: dict[str, Any] = {"proxy": proxy, "proxy_auth": proxy_auth}
        if url.startswith("https:"):
            options["ssl"] = ssl_context()
        return options

    def proxy(self, url: str) -> tuple[Any, Any]:
        """(proxy URL, proxy auth) for `url`, or (None, None) when it is reached directly."""
        origin = url[: url.find("/", url.find("//") + 2)]
        found = self._proxies.get(origin)
        if found is None:
            from aiohttp.helpers import get_env_proxy_for_url
            from yarl import URL

            try:
                found = get_env_proxy_for_url(URL(url))
            except LookupError:
                found = (None, None)
            self._proxies[origin] = found
        return found


async def _closer(session: Session) -> AsyncIterator[None]:
    """Started once per session: the loop's `shutdown_asyncgens()` (run by `asyncio.run`) closes the session."""
    try:
        yield
    finally:
        await session.http.close()


class SessionPool:
    """The running loop's `Session` (an HTTP pool belongs to the loop that opened its connections)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Session, Any]] = (
            weakref.WeakKeyDictionary()
        )

    async def session(self) -> Session:
        """The session of the running loop, made on first use."""
        loop = asyncio.get_running_loop()
        entry = self._sessions.get(loop)
        if entry is not None and not entry[0].http.closed:
            return entry[0]
        session = Session()
        closer = _closer(session)
        await closer.__anext__()
        with self._lock:
            self._sessions[loop] = (session, closer)
        return session

    async def aclose(self) -> None:
        """Close the running loop's session now (the next call opens a new one)."""
        with self._lock:
            entry = self._sessions.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()
