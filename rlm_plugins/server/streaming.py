"""Server-sent events in the OpenAI chunk format, with the run's progress as SSE comments in between.

The stream opens with the role chunk at once. While the run works, each root step, code execution and sub-call
becomes a comment line (`: rlm {"event": ...}`), which SSE clients (the official ones included) ignore, and
a `: keep-alive` comment goes out every few seconds of silence. The answer (or the tool calls) then arrives as
ordinary chunks, then `data: [DONE]`. A failure after the stream opened is sent as an OpenAI error event.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio

from rlm_plugins.core.events import CodeExecuted, Event, RootStep, SubCall
from rlm_plugins.server.errors import APIError
from rlm_plugins.server.responses import Reply, chunk, reply_chunks

KEEPALIVE = 10.0
_DONE = object()


class Progress:
    """An engine observer that queues short progress notes for the stream (thread-safe)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()

    def __call__(self, event: Event) -> None:
        note = _note(event)
        if note is not None:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, note)

    def done(self, _: Any = None) -> None:
        """Mark the end of the run (a task done-callback)."""
        self.loop.call_soon_threadsafe(self.queue.put_nowait, _DONE)


def _note(event: Event) -> dict[str, Any] | None:
    if isinstance(event, RootStep):
        return {"event": "root_step", "iteration": event.iteration, "depth": event.depth}
    if isinstance(event, CodeExecuted):
        out = len(event.result.stdout) + len(event.result.stderr)
        return {"event": "code", "iteration": event.iteration, "depth": event.depth, "output_chars": out}
    if isinstance(event, SubCall):
        return {"event": "sub_call", "model": event.model, "depth": event.depth}
    return None


def sse(data: Any) -> str:
    """One SSE data event."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


async def event_stream(
    work: Callable[[], Awaitable[Reply]],
    progress: Progress,
    model: str,
    include_usage: bool,
    opening: Reply,
    on_close: Callable[[], Awaitable[None]],
    track: Callable[[asyncio.Task[Any]], Any] = lambda task: task,
) -> AsyncIterator[str]:
    """The response body: role chunk, progress comments, the reply's chunks, [DONE]; the run is cancelled if the
    client goes away (Starlette cancels this generator), and `on_close` always runs."""
    task = asyncio.ensure_future(work())
    track(task)
    task.add_done_callback(progress.done)
    try:
        usage = {"usage": None} if include_usage else {}
        yield sse(chunk(opening.id, opening.created, model, {"role": "assistant", "content": ""}, **usage))
        while True:
            try:
                item = await asyncio.wait_for(progress.queue.get(), KEEPALIVE)
            except asyncio.TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if item is _DONE:
                break
            yield f": rlm {json.dumps(item)}\n\n"
        try:
            reply = task.result()
        except APIError as exc:
            yield sse(exc.body())
        else:
            reply.id, reply.created = opening.id, opening.created
            for piece in reply_chunks(reply, model, include_usage):
                yield sse(piece)
        yield "data: [DONE]\n\n"
    finally:
        # Starlette cancels this generator when the client leaves; the shield lets the run's own cleanup (the
        # sandbox is stopped) finish instead of being cancelled again by the enclosing cancel scope.
        with anyio.CancelScope(shield=True):
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await on_close()
