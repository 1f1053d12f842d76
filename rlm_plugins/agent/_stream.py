"""The two streaming drivers of a turn: a sync iterator (the turn runs on a worker thread) and an async iterator
(the turn runs as a task on the caller's loop). Both yield the turn's events as they happen, then the answer's
chunks and `Done`; closing either early cancels the turn."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from rlm_plugins.agent.events import AgentEvent, Sink, closing_events
from rlm_plugins.core.result import RLMResult

_END = object()


def stream_sync(run: Callable[[Sink], RLMResult], turn: int, cancel: Callable[[], None]) -> Iterator[AgentEvent]:
    """Run `run(sink)` on a worker thread and yield what it hands `sink`, then the closing events."""
    events: queue.SimpleQueue[Any] = queue.SimpleQueue()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = run(events.put)
        except BaseException as exc:  # re-raised in the consumer's thread
            outcome["error"] = exc
        finally:
            events.put(_END)

    thread = threading.Thread(target=work, name="rlm-agent-turn", daemon=True)
    thread.start()
    ended = False
    try:
        while (item := events.get()) is not _END:
            yield item
        ended = True
    finally:
        if not ended:
            cancel()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    yield from closing_events(turn, outcome["result"])


async def stream_async(run: Callable[[Sink], Awaitable[RLMResult]], turn: int) -> AsyncIterator[AgentEvent]:
    """Run `run(sink)` as a task and yield what it hands `sink` (from any thread), then the closing events."""
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    events: asyncio.Queue[AgentEvent] = asyncio.Queue()

    def put(event: AgentEvent) -> None:
        if threading.get_ident() == loop_thread:
            events.put_nowait(event)
        else:
            loop.call_soon_threadsafe(events.put_nowait, event)

    task = asyncio.ensure_future(run(put))
    try:
        while True:
            if task.done():
                await asyncio.sleep(0)  # what other threads scheduled before the task ended lands first
                if events.empty():
                    break
            getter = asyncio.ensure_future(events.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
            else:
                getter.cancel()
        result = task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    for event in closing_events(turn, result):
        yield event
