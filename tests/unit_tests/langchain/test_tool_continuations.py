"""ChatRLM resumes a paused run only in the conversation it paused in (the core's tool-turn check, shared with
the server): tool results spliced into another conversation raise `ContinuationMismatchError`."""

from __future__ import annotations

import time

import pytest
from langchain_core.messages import HumanMessage

from rlm_plugins.errors import ContinuationMismatchError
from tests.integration_tests.server._scripts import descendants
from tests.unit_tests.langchain.test_tools import magic, rlm


def settled(before: set[int], wait: float = 30.0) -> set[int]:
    """The processes started since `before` that are still alive after up to `wait` seconds."""
    deadline = time.monotonic() + wait
    while (descendants() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    return descendants() - before


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_tool_results_in_another_conversation_are_refused(mode):
    before = descendants()
    bound = rlm().bind_tools([magic])
    question = HumanMessage("What is magic(3)?")
    paused = bound.invoke([question]) if mode == "sync" else await bound.ainvoke([question])
    result = magic.invoke(paused.tool_calls[0])
    forged = [HumanMessage("Something else entirely"), paused, result]
    with pytest.raises(ContinuationMismatchError, match=r"not the one that run paused in.*the paused run was closed"):
        bound.invoke(forged) if mode == "sync" else await bound.ainvoke(forged)
    assert settled(before) == set(), "the paused run's sandbox was closed"


def test_the_conversation_may_not_grow_before_the_calls():
    bound = rlm().bind_tools([magic])
    question = HumanMessage("What is magic(3)?")
    paused = bound.invoke([question])
    with pytest.raises(ContinuationMismatchError):
        bound.invoke([HumanMessage("earlier"), question, paused, magic.invoke(paused.tool_calls[0])])
