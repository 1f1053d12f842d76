"""Calling a host tool from a sandbox thread: the one rule every backend follows.

Calls come from threads that are not the event loop's: the protocol reader of an out-of-process sandbox, the worker
running in-process code (or a thread that code started), a DSPy interpreter's worker. The rule:

- an async tool runs on the event loop of the `aexecute` that is waiting, when there is one; else on a fresh loop in
  a worker thread. A sync tool runs on a worker thread, never on the reader or the event loop.
- every call runs in a copy of the contextvars of whoever called `execute`/`aexecute`, so `dspy.context`, tracing
  and the caller's settings apply to sub-calls made from REPL code;
- text arguments are made valid (lone surrogates replaced), as stdout is;
- worker threads are daemons that nothing joins at exit: a hung tool never keeps the host process from ending.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from rlm_plugins._threads import DaemonPool
from rlm_plugins.repl._values import clean


def is_async(tool: Any) -> bool:
    """Whether calling `tool` gives a coroutine: an async function, or an object whose `__call__` is one."""
    if inspect.iscoroutinefunction(tool):
        return True
    return callable(tool) and not inspect.isroutine(tool) and inspect.iscoroutinefunction(type(tool).__call__)


class ToolCaller:
    """Calls host tools for one execution: on its event loop (if any) and in its caller's contextvars."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop | None = None, context: contextvars.Context | None = None
    ) -> None:
        self.loop = loop
        self.context = contextvars.copy_context() if context is None else context

    @classmethod
    def here(cls) -> ToolCaller:
        """A caller for the current thread: its running loop (if any) and a copy of its contextvars."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        return cls(loop)

    def _loop_open(self) -> bool:
        return self.loop is not None and not self.loop.is_closed()

    def call(self, tool: Callable[..., Any], args: Any, kwargs: Mapping[str, Any]) -> Any:
        """Call `tool` and wait for its value, from any thread but the event loop's own."""
        args, kwargs = clean(list(args)), clean(dict(kwargs))
        if is_async(tool) and self._loop_open():
            return self._on_loop(tool, args, kwargs).result()
        result = self.context.copy().run(tool, *args, **kwargs)
        if not inspect.isawaitable(result):
            return result
        if self._loop_open():
            return self._on_loop(_awaited, [result], {}).result()
        return self.context.copy().run(asyncio.run, _awaited(result))

    def bind(self, tool: Callable[..., Any]) -> Callable[..., Any]:
        """`tool` as a plain sync function that follows this rule when called; name, doc and signature are kept."""

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.call(tool, args, kwargs)

        functools.update_wrapper(call, tool, assigned=("__module__", "__name__", "__qualname__", "__doc__"))
        try:
            call.__signature__ = inspect.signature(tool)  # type: ignore[attr-defined]
        except (TypeError, ValueError):
            pass
        return call

    def submit(self, tool: Callable[..., Any], args: Any, kwargs: Mapping[str, Any], pool: DaemonPool) -> cf.Future:
        """Start calling `tool` without waiting (from a reader thread): async tools on the loop, sync ones on `pool`."""
        if is_async(tool) and self._loop_open():
            return self._on_loop(tool, clean(list(args)), clean(dict(kwargs)))
        return pool.submit(self.call, tool, args, kwargs)

    def _on_loop(self, tool: Callable[..., Any], args: list, kwargs: dict) -> cf.Future:
        """A task on the execution's loop, created in a copy of the caller's context; never runs `tool` here."""
        fut: cf.Future = cf.Future()

        def start() -> None:
            try:
                task = asyncio.ensure_future(tool(*args, **kwargs))
            except BaseException as exc:  # wrong arguments, or not awaitable: that call fails
                fut.set_exception(exc)
                return
            task.add_done_callback(lambda done: _settle(done, fut))

        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(start, context=self.context.copy())
        except RuntimeError as exc:  # the loop closed meanwhile
            fut.set_exception(RuntimeError(f"the event loop of this execution is closed ({exc})"))
        return fut


def _settle(task: asyncio.Future, fut: cf.Future) -> None:
    if task.cancelled():
        fut.set_exception(RuntimeError("the tool call was cancelled"))
    elif (exc := task.exception()) is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(task.result())


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
