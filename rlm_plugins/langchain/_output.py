"""A finished ChatRLM answer as stream chunks: the text in pieces, the tool calls, then one closing chunk."""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.utils.utils import LC_ID_PREFIX

from rlm_plugins.langchain._lc_private import StreamingCallbackHandler

STREAMING: contextvars.ContextVar[bool] = contextvars.ContextVar("rlm_streaming", default=False)
"""Set while `ChatRLM.stream`/`astream` runs its invocation: the run then reports its answer as tokens."""

_PIECE = re.compile(r"\s*\S+\s*|\s+")
_WORDS_PER_CHUNK = 8


class Handoff:
    """Passes the answer's chunks from `_agenerate` to `ChatRLM.astream` while the run is still open.

    `astream` yields each chunk before the run ends, so a consumer that watches the run's output (astream_events
    on the model itself) sees them as the run's stream; `_agenerate` returns once the last one was taken.
    """

    def __init__(self) -> None:
        self.queue: asyncio.Queue[AIMessageChunk | None] = asyncio.Queue()
        self.sent = False

    async def send(self, chunks: list[ChatGenerationChunk]) -> None:
        for chunk in chunks:
            self.queue.put_nowait(chunk.message)  # type: ignore[arg-type]
        self.queue.put_nowait(None)
        await self.queue.join()

    async def receive(self, task: asyncio.Future) -> AsyncIterator[AIMessageChunk]:
        """The chunks handed over by the run in `task`; or, when it handed none (a cache hit), its message's."""
        try:
            while True:
                getter = asyncio.ensure_future(self.queue.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break
                item = getter.result()
                if item is None:
                    self.queue.task_done()
                    break
                self.sent = True
                yield item
                self.queue.task_done()
            message = await task
        finally:
            if not task.done():
                task.cancel()
        if not self.sent:
            for chunk in to_chunks(message):
                yield chunk.message  # type: ignore[misc]


HANDOFF: contextvars.ContextVar[Handoff | None] = contextvars.ContextVar("rlm_handoff", default=None)


def wants_tokens(run_manager: Any) -> bool:
    """Whether a run should report its answer as tokens: it is streamed, or a stream consumer listens."""
    if STREAMING.get() or HANDOFF.get() is not None:
        return True
    return any(isinstance(h, StreamingCallbackHandler) for h in run_manager.handlers)


def token_chunks(message: AIMessage, run_manager: Any) -> list[ChatGenerationChunk]:
    """The answer as tokens for the run's handlers, or none when nobody streams; `message` gets the run's id, so
    consumers that match chunks to the final message (LangGraph's "messages" mode) see one message."""
    if run_manager is None or not wants_tokens(run_manager):
        return []
    message.id = message.id or f"{LC_ID_PREFIX}-{run_manager.run_id}"
    return list(to_chunks(message))


def to_chunks(message: AIMessage) -> Iterator[ChatGenerationChunk]:
    """Chunks that add up to `message`; usage and metadata ride on the last one (`chunk_position="last"`)."""
    words = _PIECE.findall(message.text)
    for i in range(0, len(words), _WORDS_PER_CHUNK):
        text = "".join(words[i : i + _WORDS_PER_CHUNK])
        yield ChatGenerationChunk(message=AIMessageChunk(text, id=message.id))
    if message.tool_calls:
        tool_call_chunks = [
            {"name": call["name"], "args": json.dumps(call["args"]), "id": call["id"], "index": index}
            for index, call in enumerate(message.tool_calls)
        ]
        yield ChatGenerationChunk(message=AIMessageChunk("", id=message.id, tool_call_chunks=tool_call_chunks))
    yield ChatGenerationChunk(
        message=AIMessageChunk(
            "",
            id=message.id,
            chunk_position="last",
            usage_metadata=message.usage_metadata,
            response_metadata=message.response_metadata,
        )
    )
