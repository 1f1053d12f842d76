"""`llm_query_batched` on the async path: a fixed set of workers, at most `max_concurrency` slots in flight, answers
in prompt order whatever order the slots finish in."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from rlm_plugins._threads import SHARED_LOOP
from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.engine import Engine
from rlm_plugins.core.memo import MemoSubModel
from rlm_plugins.repl.factory import sandbox_factory

CODE = "```repl\nFINAL(llm_query_batched([str(i) for i in range(24)]))\n```"


async def test_async_batch_keeps_prompt_order_and_fills_exactly_max_concurrency_slots():
    in_flight, peak = 0, 0

    async def slow(prompt: str) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01 * (24 - int(prompt)))
        in_flight -= 1
        return f"answer {prompt}"

    def root(messages):
        return CODE if not any(m["role"] == "assistant" for m in messages) else "FINAL('late')"

    engine = Engine(
        ChatPolicy(root, model="root"),
        CallableSubModel(slow, name="slow"),
        sandbox_factory("local"),
        max_concurrency=5,
    )
    result = await engine.arun("q", "c")
    assert result.answer == [f"answer {i}" for i in range(24)]
    assert peak == 5


class AsyncNativeSub:
    """An async-native sub-model that records the thread and the context each call ran in."""

    name = "native"
    async_native = True

    def __init__(self) -> None:
        self.threads: set[str] = set()
        self.seen: set[str] = set()
        self.in_flight = self.peak = 0

    def query(self, prompt: str) -> str:
        raise AssertionError("a sync batch of an async-native sub-model must not call query()")

    async def aquery(self, prompt: str) -> str:
        self.threads.add(threading.current_thread().name)
        self.seen.add(TAG.get())
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        return f"answer {prompt}"


TAG: contextvars.ContextVar[str] = contextvars.ContextVar("TAG", default="unset")


def test_a_sync_batch_of_an_async_native_sub_model_runs_as_coroutines_on_the_shared_loop():
    sub = AsyncNativeSub()

    def root(messages):
        return CODE if not any(m["role"] == "assistant" for m in messages) else "FINAL('late')"

    engine = Engine(ChatPolicy(root, model="root"), MemoSubModel(sub), sandbox_factory("local"), max_concurrency=6)
    TAG.set("caller")
    result = engine.run("q", "c")
    assert result.answer == [f"answer {i}" for i in range(24)]
    assert sub.threads == {"rlm-async"}  # no thread per call: every slot ran on the one shared loop
    assert sub.seen == {"caller"}  # in the caller's context (callbacks, settings)
    assert sub.peak == 6


def test_the_shared_loop_refuses_to_wait_on_itself():
    async def inner() -> None:
        with pytest.raises(RuntimeError, match="own thread"):
            SHARED_LOOP.run(asyncio.sleep(0))

    SHARED_LOOP.run(inner())
