"""`llm_query_batched` on the async path: a fixed set of workers, at most `max_concurrency` slots in flight, answers
in prompt order whatever order the slots finish in."""

from __future__ import annotations

import asyncio

from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.engine import Engine
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
