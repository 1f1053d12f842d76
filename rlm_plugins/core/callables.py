"""Adapters that turn plain functions into engine ports, for scripted models, tests and quick experiments."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from rlm_plugins._threads import in_thread
from rlm_plugins.core.ports import Completion


class CallableSubModel:
    """A SubModel from a function `prompt -> str` (sync or async); the async path never blocks the loop.

    Examples:
        >>> sub = CallableSubModel(str.upper, name="upper")
        >>> sub.query("hi")
        'HI'
    """

    def __init__(
        self,
        fn: Callable[[str], str | Completion] | Callable[[str], Awaitable[str | Completion]],
        afn: Callable[[str], Awaitable[str | Completion]] | None = None,
        *,
        name: str = "callable",
    ) -> None:
        self.fn = fn
        self.afn = afn if afn is not None else (fn if inspect.iscoroutinefunction(fn) else None)
        self.name = name

    def query(self, prompt: str) -> str | Completion:
        result = self.fn(prompt)
        if inspect.isawaitable(result):
            return asyncio.run(_wait(result))
        return result

    async def aquery(self, prompt: str) -> str | Completion:
        if self.afn is not None:
            return await self.afn(prompt)
        return await in_thread(self.fn, prompt)  # a daemon: a hung call cannot hold the host


async def _wait(awaitable: Awaitable[str | Completion]) -> str | Completion:
    return await awaitable
