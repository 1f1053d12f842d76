"""Daemon worker threads for work the host may abandon (a hung tool, a hung model call).

`concurrent.futures.ThreadPoolExecutor` threads are joined when the interpreter exits, and `asyncio.to_thread` runs on
the loop's default executor, which `asyncio.run` waits for at shutdown: one call that never returns then keeps the
whole host process alive. The threads here are daemons that nothing joins.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures as cf
import contextlib
import contextvars
import os
import queue
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class DaemonPool:
    """A thread pool of daemon threads, started on demand and ended when idle; nothing joins them at exit."""

    def __init__(self, max_workers: int, name: str, idle: float = 30.0) -> None:
        self.max_workers = max(1, max_workers)
        self.name = name
        self.idle = idle
        self._queue: queue.SimpleQueue[tuple[cf.Future, Callable[..., Any], tuple]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._free = 0
        self._waiting = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        """Run `fn(*args)` on a pool thread; the future holds its result or exception."""
        fut: cf.Future = cf.Future()
        with self._lock:
            self._queue.put((fut, fn, args))
            self._waiting += 1
            if self._waiting > self._free and self._threads < self.max_workers:
                self._threads += 1
                threading.Thread(target=self._work, name=self.name, daemon=True).start()
        return fut

    def _work(self) -> None:
        while True:
            with self._lock:
                self._free += 1
            try:
                fut, fn, args = self._queue.get(timeout=self.idle)
            except queue.Empty:
                with self._lock:
                    self._free -= 1
                    if self._waiting == 0:
                        self._threads -= 1
                        return
                continue
            with self._lock:
                self._free -= 1
                self._waiting -= 1
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn(*args))
                except BaseException as exc:  # the caller gets every failure, the thread goes on
                    fut.set_exception(exc)
            del fut, fn, args


_SHARED = DaemonPool(64, "rlm-host")


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """`asyncio.to_thread`, on a daemon thread that `asyncio.run` does not wait for at shutdown."""
    context = contextvars.copy_context()
    return await asyncio.wrap_future(_SHARED.submit(context.run, fn, *args))


class BackgroundLoop:
    """One daemon thread running an event loop for synchronous callers of async work; rebuilt after a fork."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0
        atexit.register(self.stop)

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name=self._name, daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def is_current(self) -> bool:
        """Whether the calling thread is the loop's own (where `run` would wait on itself forever)."""
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the background loop (in a copy of the caller's context) and block until it finishes."""
        if self.is_current():
            coro.close()
            raise RuntimeError(f"{self._name}: run() called from the loop's own thread would never return")
        return asyncio.run_coroutine_threadsafe(coro, self._running()).result()

    def stop(self, timeout: float = 2.0) -> None:
        """Close the loop's async generators (and so the HTTP sessions opened on it), then stop it."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None or self._pid != os.getpid() or not loop.is_running():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)


SHARED_LOOP = BackgroundLoop("rlm-async")
"""The process's one loop for synchronous callers: the http transport's sync calls and the sync batches of
async-native sub-models both run on it, so they share its connection pool and need no thread per call."""
