"""ChatRLM replicas sharing a Redis session store: a run paused for tool calls on one replica resumes on another
(e2b over the fake envd reconnects by id), and of two replicas resuming it at once exactly one wins."""

from __future__ import annotations

import threading

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from pydantic import Field
from pytest_socket import enable_socket

from rlm_plugins.core.store import RedisSessionStore
from rlm_plugins.langchain import ChatRLM, SessionExpiredError
from tests.unit_tests.langchain.scripted import ScriptedSub, repl

pytestmark = pytest.mark.filterwarnings("ignore:E2BSandbox uploads the driver")


@pytest.fixture(autouse=True)
def _loopback_allowed():
    """The E2B SDK and Redis talk to servers on 127.0.0.1."""
    enable_socket()


@tool
def magic(x: int) -> int:
    """Apply the magic function to x."""
    return x + 100


class Root(FakeMessagesListChatModel):
    """Calls the tool; once the results are in its prompt, answers from the REPL state."""

    responses: list = Field(default_factory=list)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        resumed = "The caller ran your tool calls" in "\n".join(m.text for m in messages)
        code = "FINAL(f'{secret + 1}:{tool_results}')" if resumed else "secret = 41\nmagic(3)"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(repl(code)))])


def replica(store: RedisSessionStore, e2b_options: dict) -> object:
    root = Root()
    model = ChatRLM(root=root, sub=ScriptedSub(), sandbox="e2b", sandbox_options=e2b_options, session_store=store)
    return model.bind_tools([magic])


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_pause_on_one_replica_resume_on_another(mode, redis_url, e2b_options, envd) -> None:
    store = RedisSessionStore(redis_url)
    first, second = replica(store, e2b_options), replica(store, e2b_options)
    question = HumanMessage("What is magic(3)?")
    paused = first.invoke([question]) if mode == "sync" else await first.ainvoke([question])
    call_id = paused.tool_calls[0]["id"]
    followup = [question, paused, ToolMessage("103", tool_call_id=call_id)]
    answer = second.invoke(followup) if mode == "sync" else await second.ainvoke(followup)
    assert answer.text == "42:{'" + call_id + "': '103'}"


def test_two_replicas_resuming_at_once_exactly_one_wins(redis_url, e2b_options, envd) -> None:
    store = RedisSessionStore(redis_url)
    replicas = [replica(store, e2b_options) for _ in range(3)]
    question = HumanMessage("What is magic(3)?")
    paused = replicas[0].invoke([question])
    followup = [question, paused, ToolMessage("103", tool_call_id=paused.tool_calls[0]["id"])]
    gate, outcomes = threading.Barrier(2), []

    def resume(bound) -> None:
        gate.wait()
        try:
            outcomes.append(str(bound.invoke(followup).text))
        except SessionExpiredError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=resume, args=(bound,)) for bound in replicas[1:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(type(o).__name__ for o in outcomes) == ["SessionExpiredError", "str"]
    assert next(o for o in outcomes if isinstance(o, str)).startswith("42:")
