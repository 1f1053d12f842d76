"""What a run does around its loop: stepping the generator, pausing, finishing, and cancellation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator
from typing import Any

from rlm_plugins.core.result import RLMResult
from rlm_plugins.core.steps import Operation, Paused
from rlm_plugins.repl.base import Sandbox

_CLEANUPS: set[asyncio.Future[None]] = set()  # aborts in progress, held so an abandoned one is not collected


class RunLifecycle:
    """The driver-facing half of `Run`: the generator's position, the sandbox it owns, and its children."""

    result: RLMResult | None

    def __init__(self, sandbox: Sandbox | None) -> None:
        self.sandbox = sandbox
        self.owns_sandbox = sandbox is None
        self._cancelled = False
        self.result = None
        self._flow: Generator[Operation, Any, RLMResult] | None = None
        self._pending: Operation | None = None
        self._reply: tuple[Any, BaseException | None] = (None, None)
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        """Whether the run was cancelled (by `cancel()`, or by its parent run stopping its children)."""
        subcalls = getattr(self, "subcalls", None)
        return self._cancelled or (subcalls is not None and subcalls.life.cancelled)

    def open_sandbox(self) -> Sandbox:
        """The run's sandbox, made now if the run has none yet."""
        with self._lock:
            if self.sandbox is None:
                if self.cancelled:
                    from rlm_plugins.errors import RunCancelledError

                    raise RunCancelledError("the run was cancelled before its sandbox started")
                self.sandbox = self.new_sandbox()  # type: ignore[attr-defined]
            return self.sandbox

    def next_operation(self) -> tuple[Operation | None, bool]:
        """The next operation to perform and whether it is the one a pause stopped at; (None, False) at the end."""
        if self._pending is not None:
            op, self._pending = self._pending, None
            return op, True
        if self._flow is None:
            self._flow = self.steps()  # type: ignore[attr-defined]
        value, error = self._reply
        self._reply = (None, None)
        try:
            op = self._flow.throw(error) if error is not None else self._flow.send(value)
        except StopIteration as stop:
            self.result = stop.value
            return None, False
        return op, False

    def reply(self, value: Any = None, error: BaseException | None = None) -> None:
        """What performing the last operation gave: its value, or the error to throw into the loop."""
        self._reply = (value, error)

    def pause_at(self, op: Operation) -> Paused:
        """Stop before `op`; driving the run again performs it."""
        self._pending = op
        return Paused(self, op)  # type: ignore[arg-type]

    def cancel(self) -> None:
        """End the run promptly from any thread: stop its code and child runs; the result so far is kept.

        The run finishes with finish_reason="cancelled" (sub-calls in flight are abandoned). Calling it again,
        or after the run ended, does nothing.
        """
        if self._cancelled or self.result is not None:
            return
        self._cancelled = True
        subcalls = self.subcalls  # type: ignore[attr-defined]
        subcalls.life.cancel()
        subcalls.stop_children()
        sandbox = self.sandbox
        if sandbox is not None:
            stop_code(sandbox)

    def finish(self) -> None:
        """The run ended: stop its rlm_query children, release the sandbox it owns."""
        self.subcalls.stop_children()  # type: ignore[attr-defined]
        if self.owns_sandbox and self.sandbox is not None:
            self.sandbox.close()

    async def afinish(self) -> None:
        await self.subcalls.astop_children()  # type: ignore[attr-defined]
        if self.owns_sandbox and self.sandbox is not None:
            await self.sandbox.aclose()

    def abort(self) -> None:
        """The driver was interrupted (KeyboardInterrupt, an error it cannot hand to the loop): stop everything."""
        self._interrupted()
        self.finish()

    async def aabort(self) -> None:
        """The async twin of `abort`. The cleanup runs as its own task: a second cancellation of the caller (a
        cancel scope that cancels at every await) returns at once but never skips closing the sandbox."""
        cleanup = asyncio.ensure_future(self._aabort())
        _CLEANUPS.add(cleanup)
        cleanup.add_done_callback(_CLEANUPS.discard)
        await asyncio.shield(cleanup)

    async def _aabort(self) -> None:
        await asyncio.to_thread(self.cancel)
        self._interrupted()
        await self.afinish()

    def _interrupted(self) -> None:
        self.cancel()
        if self.result is None:
            self.result = self._result("cancelled")  # type: ignore[attr-defined]
        self._pending = None
        if self._flow is not None:
            self._flow.close()


def stop_code(sandbox: Sandbox) -> None:
    """Interrupt the code running in `sandbox`: its `cancel()` (interrupt, then kill after a grace period) when
    the backend has one, else `close()`."""
    cancel = getattr(sandbox, "cancel", None)
    (cancel if callable(cancel) else sandbox.close)()
