"""The `rlm_query` children of one run, so that a run ends only with its whole subtree stopped.

A child is registered while it runs. `stop()` (and its async twin) marks every child cancelled, so none starts
another model call or code cell; a child already in its loop has its sandbox closed at once (killing the code it
runs), and a child still starting its sandbox is awaited until it reaches its loop and leaves. A child waiting on a
model call is not waited for: it can start nothing more, and the call's answer is dropped.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlm_plugins.core.engine import Run

START_WAIT = 60.0
"""How long `stop()` waits for a child that is still starting its sandbox (a start takes seconds at most)."""


@dataclass(eq=False)
class Lifecycle:
    """The cancellation state of one run: cancelled by its parent, and whether it reached its loop."""

    cancelled: bool = False
    looping: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter_loop(self) -> bool:
        """Called before each of the run's own model calls; False once the run is cancelled."""
        with self.lock:
            self.looping = True
            return not self.cancelled

    def cancel(self) -> bool:
        """Mark the run cancelled; True when it is in its loop (its sandbox is started and may be closed)."""
        with self.lock:
            self.cancelled = True
            return self.looping


class Children:
    """The live children of one run."""

    def __init__(self) -> None:
        self._live: dict[Run, asyncio.Task | None] = {}
        self._lock = threading.Lock()
        self._stopped = False

    def add(self, child: Run, task: asyncio.Task | None = None) -> bool:
        """Register a child about to run; False when the parent has already stopped its children."""
        with self._lock:
            if self._stopped:
                return False
            self._live[child] = task
            return True

    def remove(self, child: Run) -> None:
        with self._lock:
            self._live.pop(child, None)
        child.subcalls.life.done.set()

    def _take(self) -> dict[Run, asyncio.Task | None]:
        with self._lock:
            self._stopped = True
            return dict(self._live)

    def stop(self) -> None:
        """Stop every child (and theirs); returns once none of them can run code or start a sandbox."""
        for child in self._take():
            stop_run(child)

    async def astop(self) -> None:
        """The async twin of `stop`: children running on this event loop are cancelled and awaited."""
        loop = asyncio.get_running_loop()
        for child, task in self._take().items():
            if task is None or task.get_loop() is not loop:
                await asyncio.to_thread(stop_run, child)
                continue
            looping = child.subcalls.life.cancel()
            await child.subcalls.children.astop()
            if looping and child.sandbox is not None:
                await child.sandbox.aclose()
                task.cancel()
            await asyncio.wait({task}, timeout=START_WAIT)


def stop_run(run: Run) -> None:
    """Cancel `run` and its subtree from another thread: close its sandbox, or wait until it leaves its start."""
    looping = run.subcalls.life.cancel()
    run.subcalls.children.stop()
    if looping and run.sandbox is not None:
        run.sandbox.close()
    elif not looping:
        run.subcalls.life.done.wait(START_WAIT)
