"""`LangGraphSessionStore`: ChatRLM's sessions in a LangGraph store, next to the graph's own persistence.

A graph compiled with a persistent LangGraph store (`SqliteStore`, `PostgresStore`, ...) can keep ChatRLM's thread
sessions and paused runs there instead of in Redis, so a restarted process with the same checkpointer and store
resumes an e2b thread's REPL without another service.
"""

from __future__ import annotations

import time
from typing import Any

from rlm_plugins.core.snapshot import discard
from rlm_plugins.core.store import SessionStore


class LangGraphSessionStore(SessionStore):
    """Session data in a LangGraph `BaseStore`, under `namespace`.

    `take` reads and then deletes, which is atomic only within one process (a lock would need the store's
    cooperation): for several replicas resuming the same paused runs, use `RedisSessionStore`.

    Args:
        store: a LangGraph store, e.g. `SqliteStore.from_conn_string("graph.db")` after `setup()`.
        namespace: where in the store the sessions live.

    Examples:
        >>> model = ChatRLM(root=..., sandbox="e2b", session_store=LangGraphSessionStore(store))  # doctest: +SKIP
    """

    def __init__(self, store: Any, namespace: tuple[str, ...] = ("rlm", "sessions")) -> None:
        self.store = store
        self.namespace = namespace

    def put(self, key: str, data: dict[str, Any], ttl: float) -> None:
        self.store.put(self.namespace, key, _value(data, ttl), index=False, **_ttl(self.store, ttl))

    def take(self, key: str) -> dict[str, Any] | None:
        item = self.store.get(self.namespace, key)
        if item is None:
            return None
        self.store.delete(self.namespace, key)
        return _live(item.value)

    async def aput(self, key: str, data: dict[str, Any], ttl: float) -> None:
        await self.store.aput(self.namespace, key, _value(data, ttl), index=False, **_ttl(self.store, ttl))

    async def atake(self, key: str) -> dict[str, Any] | None:
        item = await self.store.aget(self.namespace, key)
        if item is None:
            return None
        await self.store.adelete(self.namespace, key)
        return _live(item.value)


def _value(data: dict[str, Any], ttl: float) -> dict[str, Any]:
    return {"data": data, "expires": time.time() + ttl}


def _ttl(store: Any, ttl: float) -> dict[str, Any]:
    """The store's own expiry (in minutes), for stores that support one; the others keep expired items until read."""
    return {"ttl": ttl / 60} if getattr(store, "supports_ttl", False) else {}


def _live(value: dict[str, Any]) -> dict[str, Any] | None:
    if value["expires"] <= time.time():
        discard(value["data"])  # nobody will resume it: release a sandbox this process holds for it
        return None
    return value["data"]
