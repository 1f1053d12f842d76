"""`LangGraphSessionStore`: ChatRLM's sessions in a LangGraph store (here `InMemoryStore`)."""

from __future__ import annotations

import time

import pytest
from langgraph.store.memory import InMemoryStore

from rlm_plugins.core import _held
from rlm_plugins.langchain import LangGraphSessionStore
from rlm_plugins.repl import create_sandbox
from tests.unit_tests.langchain.test_threads import RECALL, REMEMBER, rlm


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_put_then_take_once(mode: str) -> None:
    store = LangGraphSessionStore(InMemoryStore())
    if mode == "sync":
        store.put("k", {"a": 1}, 60)
        assert (store.take("k"), store.take("k")) == ({"a": 1}, None)
    else:
        await store.aput("k", {"a": 1}, 60)
        assert (await store.atake("k"), await store.atake("k")) == ({"a": 1}, None)


def test_an_expired_entry_is_gone_and_its_held_sandbox_closed() -> None:
    store = LangGraphSessionStore(InMemoryStore())
    sandbox = create_sandbox("inprocess")
    token = _held.hold(sandbox, None)
    store.put("k", {"sandbox": {"kind": "inprocess", "process": _held.PROCESS, "token": token}}, 0.01)
    time.sleep(0.05)
    assert store.take("k") is None
    assert _held.take(token) is None  # released, not left held


def test_a_thread_keeps_its_repl_in_a_langgraph_store() -> None:
    store = LangGraphSessionStore(InMemoryStore())
    config = {"configurable": {"thread_id": "lg"}}
    rlm(REMEMBER, session_store=store).invoke("Remember 41.", config)
    fresh = rlm(RECALL, session_store=store)  # another ChatRLM over the same store
    assert fresh.invoke("Recall.", config).text == "42"
    assert fresh.close_thread("lg")
