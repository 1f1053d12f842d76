"""Where paused runs wait: the `SessionStore` interface, in memory (default) or in Redis (several replicas).

A store keeps JSON data under a key for a time-to-live, and `take` removes and returns it in one atomic step, so
of two concurrent resumes of one paused run exactly one gets it (the other gets `SessionExpiredError`).

    paused = drive(run, pause=hook)             # a Paused
    key = store.save(paused, ttl=600)           # plain data in the store; the sandbox stays alive
    run = store.resume(engine, key)             # in this process or, for e2b, any other
    result = drive(run)                         # (async: asave, aresume, adrive)
"""

from __future__ import annotations

import abc
import asyncio
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rlm_plugins.core.snapshot import DEFAULT_TTL, discard, reconnect
from rlm_plugins.errors import ConfigurationError, SessionExpiredError

if TYPE_CHECKING:
    from rlm_plugins.core.engine import Engine, Run
    from rlm_plugins.core.steps import Paused


class SessionStore(abc.ABC):
    """JSON data by key with a time-to-live and an atomic take; `save`/`resume` build on `put`/`take`."""

    @abc.abstractmethod
    def put(self, key: str, data: dict[str, Any], ttl: float) -> None:
        """Keep `data` (JSON-serialisable) under `key` for `ttl` seconds, replacing what was there."""

    @abc.abstractmethod
    def take(self, key: str) -> dict[str, Any] | None:
        """Remove and return the data under `key`, atomically; None when there is none (or it expired)."""

    async def aput(self, key: str, data: dict[str, Any], ttl: float) -> None:
        """The async twin of `put`."""
        await asyncio.to_thread(self.put, key, data, ttl)

    async def atake(self, key: str) -> dict[str, Any] | None:
        """The async twin of `take`."""
        return await asyncio.to_thread(self.take, key)

    def save(self, paused: Paused, ttl: float = DEFAULT_TTL, key: str | None = None) -> str:
        """Store a paused run for `ttl` seconds (its sandbox is kept alive as long); returns its key."""
        key = key or uuid.uuid4().hex
        self.put(key, paused.to_dict(ttl), ttl)
        return key

    async def asave(self, paused: Paused, ttl: float = DEFAULT_TTL, key: str | None = None) -> str:
        """The async twin of `save`."""
        key = key or uuid.uuid4().hex
        await self.aput(key, paused.to_dict(ttl), ttl)
        return key

    def resume(self, engine: Engine, key: str) -> Run:
        """Take the paused run under `key` and reconnect it; drive the returned run to continue it.

        Raises:
            SessionExpiredError: nothing is stored under `key`: it expired, or another resume took it first.
            SandboxUnavailableError: its sandbox cannot be reached from this process.
        """
        return engine.resume(_found(self.take(key), key))

    async def aresume(self, engine: Engine, key: str) -> Run:
        """The async twin of `resume` (reconnecting a remote sandbox runs off the event loop)."""
        data = _found(await self.atake(key), key)
        ref = data.get("sandbox")
        sandbox = await asyncio.to_thread(reconnect, ref) if ref is not None else None
        return engine.resume(data, sandbox=sandbox)


def _found(data: dict[str, Any] | None, key: str) -> dict[str, Any]:
    if data is None:
        msg = (
            f"no paused run under {key!r}: its time-to-live ended or it was already resumed (a paused run "
            "resumes once). Start the run again"
        )
        raise SessionExpiredError(msg)
    return data


class MemorySessionStore(SessionStore):
    """Paused runs in this process, at most `max_entries` (the oldest is dropped and its sandbox closed)."""

    def __init__(self, max_entries: int = 1024, on_drop: Callable[[dict[str, Any]], None] | None = discard) -> None:
        if max_entries < 1:
            raise ConfigurationError(f"max_entries={max_entries!r} must be at least 1")
        self.max_entries = max_entries
        self.on_drop = on_drop
        self._items: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, data: dict[str, Any], ttl: float) -> None:
        text = json.dumps(data)
        with self._lock:
            dropped = self._expire()
            self._items.pop(key, None)
            self._items[key] = (text, time.monotonic() + ttl)
            while len(self._items) > self.max_entries:
                dropped.append(self._items.popitem(last=False)[1][0])
        self._drop(dropped)

    def take(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            dropped = self._expire()
            item = self._items.pop(key, None)
        self._drop(dropped)
        return None if item is None else json.loads(item[0])

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        """Drop everything (closing the sandboxes of the paused runs)."""
        with self._lock:
            dropped = [text for text, _ in self._items.values()]
            self._items.clear()
        self._drop(dropped)

    def _expire(self) -> list[str]:
        now = time.monotonic()
        dead = [key for key, (_, expires) in self._items.items() if expires <= now]
        return [self._items.pop(key)[0] for key in dead]

    def _drop(self, texts: list[str]) -> None:
        if self.on_drop is not None:
            for text in texts:
                self.on_drop(json.loads(text))


class RedisSessionStore(SessionStore):
    """Paused runs in Redis, shared by every replica that reaches it (`pip install 'rlm-plugins[redis]'`).

    Args:
        url: a Redis URL such as "redis://localhost:6379/0"; or pass `client`.
        client: a `redis.Redis` to use instead of `url`.
        prefix: prepended to every key.

    Examples:
        >>> store = RedisSessionStore("redis://localhost:6379/0")  # doctest: +SKIP
    """

    def __init__(self, url: str | None = None, *, client: Any = None, prefix: str = "rlm:paused:") -> None:
        if client is None:
            try:
                import redis
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ImportError(
                    "RedisSessionStore needs the redis package: pip install 'rlm-plugins[redis]'"
                ) from exc
            if url is None:
                raise ConfigurationError(
                    "RedisSessionStore needs url='redis://host:port/db' or client=redis.Redis(...)"
                )
            client = redis.Redis.from_url(url)
        self.client = client
        self.prefix = prefix

    def put(self, key: str, data: dict[str, Any], ttl: float) -> None:
        self.client.set(self.prefix + key, json.dumps(data), px=max(1, int(ttl * 1000)))

    def take(self, key: str) -> dict[str, Any] | None:
        text = self.client.getdel(self.prefix + key)  # atomic: of two concurrent takes one gets None
        return None if text is None else json.loads(text)
