"""Daemon worker threads for work the host may abandon (a hung tool, a hung model call).

`concurrent.futures.ThreadPoolExecutor` threads are joined when the interpreter exits, and `asyncio.to_thread` runs on
the loop's default executor, which `asyncio.run` waits for at shutdown: one call that never returns then keeps the
whole host process alive. The threads here are daemons that nothing joins.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any


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
