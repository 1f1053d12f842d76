"""bind_tools: the root's code calls external tools, the run pauses with tool_calls, and resumes with its state."""

from __future__ import annotations

import asyncio
import time

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from pydantic import Field

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.langchain import ChatRLM, SessionExpiredError
from rlm_plugins.repl import create_sandbox
from tests.unit_tests.langchain.scripted import ScriptedRoot, ScriptedSub, repl


@tool
def magic(x: int) -> int:
    """Apply the magic function to x."""
    return x + 100


class Root(FakeMessagesListChatModel):
    """Scripted replies; remembers the prompts it was sent."""

    prompts: list[str] = Field(default_factory=list)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.prompts.append("\n".join(m.text for m in messages))
        return super()._generate(messages, stop, run_manager, **kwargs)


def pausing_root() -> Root:
    return Root(
        responses=[
            AIMessage(repl("secret = 41\nprint('before')\nmagic(3)\nprint('never printed')")),
            AIMessage(repl("FINAL(f'{secret + 1}:{list(tool_results.values())[0]}')")),
        ],
        prompts=[],
    )


def rlm(root=None, **kw) -> ChatRLM:
    return ChatRLM(root=root or pausing_root(), sub=ScriptedSub(), sandbox="local", **kw)


def test_tool_call_pauses_and_the_session_resumes_with_its_state() -> None:
    model = rlm()
    bound = model.bind_tools([magic])
    question = HumanMessage("What is magic(3)?")
    paused = bound.invoke([question])
    assert paused.response_metadata["finish_reason"] == "tool_calls"
    (call,) = paused.tool_calls
    assert call["name"] == "magic" and call["args"] == {"x": 3} and call["id"].startswith("call_rlm_")
    assert len(model.sessions) == 1
    answer = bound.invoke([question, paused, magic.invoke(call)])
    assert answer.text == "42:103"  # `secret` survived the pause; the result arrived in tool_results
    assert "The caller ran your tool calls" in model.root.prompts[-1]
    assert "Output:\nbefore\n[Error]" in model.root.prompts[-1]  # the block stopped at the tool call
    assert len(model.sessions) == 0


async def test_tool_call_pauses_and_resumes_async() -> None:
    model = rlm()
    bound = model.bind_tools([magic])
    question = HumanMessage("What is magic(3)?")
    paused = await bound.ainvoke([question])
    answer = await bound.ainvoke([question, paused, await magic.ainvoke(paused.tool_calls[0])])
    assert answer.text == "42:103"


async def test_pause_in_sync_resume_in_async() -> None:
    model = rlm()
    bound = model.bind_tools([magic])
    question = HumanMessage("What is magic(3)?")
    paused = bound.invoke([question])
    answer = await bound.ainvoke([question, paused, ToolMessage("7", tool_call_id=paused.tool_calls[0]["id"])])
    assert answer.text == "42:7"


def test_a_failed_tool_reaches_the_root_marked_as_an_error() -> None:
    model = rlm()
    bound = model.bind_tools([magic])
    paused = bound.invoke("q")
    failed = ToolMessage("no network", tool_call_id=paused.tool_calls[0]["id"], status="error")
    assert bound.invoke([HumanMessage("q"), paused, failed]).text == "42:[tool error] no network"


def test_a_session_resumes_once_then_says_what_to_do() -> None:
    model = rlm()
    bound = model.bind_tools([magic])
    question = HumanMessage("q")
    paused = bound.invoke([question])
    reply = ToolMessage("7", tool_call_id=paused.tool_calls[0]["id"])
    bound.invoke([question, paused, reply])
    with pytest.raises(SessionExpiredError, match="already resumed"):
        bound.invoke([question, paused, reply])


def test_expired_sessions_are_closed_and_reported() -> None:
    made = []

    def local(**options):
        made.append(create_sandbox("local", **options))
        return made[-1]

    model = ChatRLM(root=pausing_root(), sub=ScriptedSub(), sandbox=local, session_ttl=0.05)
    bound = model.bind_tools([magic])
    question = HumanMessage("q")
    paused = bound.invoke([question])
    (sandbox,) = made
    time.sleep(0.1)
    with pytest.raises(SessionExpiredError, match="session_ttl"):
        bound.invoke([question, paused, ToolMessage("7", tool_call_id=paused.tool_calls[0]["id"])])
    deadline = time.monotonic() + 5
    while not sandbox._closed and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sandbox._closed


def test_the_store_is_bounded() -> None:
    model = ChatRLM(root=Root(responses=[AIMessage(repl("magic(1)"))], prompts=[]), sandbox="inprocess", max_sessions=2)
    bound = model.bind_tools([magic])
    for i in range(4):
        bound.invoke(f"q{i}")
    assert len(model.sessions) == 2


def test_tool_choice_any_holds_back_the_answer_until_a_tool_is_called() -> None:
    root = Root(responses=[AIMessage(repl("FINAL('too early')")), AIMessage(repl("magic(2)"))], prompts=[])
    paused = rlm(root).bind_tools([magic], tool_choice="any").invoke("Hello")
    assert paused.tool_calls[0]["args"] == {"x": 2}
    assert "requires a call to one of the external tools" in root.prompts[-1]


def test_tool_choice_by_name_and_none() -> None:
    model = ChatRLM(root=ScriptedRoot(), sub=ScriptedSub(), sandbox="inprocess")

    @tool
    def other(word: str) -> str:
        """Another tool."""
        return word

    forced = model.bind_tools([magic, other], tool_choice="other").invoke("Hello 5")
    assert forced.tool_calls[0]["name"] == "other"
    none = model.bind_tools([magic], tool_choice="none").invoke("What is magic(3)?")
    assert not none.tool_calls and none.text.startswith("Scripted answer")
    with pytest.raises(ConfigurationError, match="tool_choice"):
        model.bind_tools([magic], tool_choice="missing")


def test_foreign_tool_messages_are_conversation() -> None:
    history = [
        HumanMessage("What is 1 + 2"),
        AIMessage("", tool_calls=[{"name": "magic", "args": {"x": 1}, "id": "abc123", "type": "tool_call"}]),
        ToolMessage('{"result": 3}', tool_call_id="abc123"),
    ]
    root = Root(responses=[AIMessage(repl("FINAL('3')"))], prompts=[])
    assert rlm(root).bind_tools([magic]).invoke(history).text == "3"
    assert 'tool result for abc123] {"result": 3}' in root.prompts[0]


def test_streamed_tool_calls_add_up() -> None:
    chunks = list(rlm().bind_tools([magic]).stream("What is magic(3)?"))
    full = chunks[0]
    for chunk in chunks[1:]:
        full += chunk
    assert isinstance(full, AIMessageChunk)
    assert full.tool_calls[0]["args"] == {"x": 3} and full.chunk_position == "last"


def test_reserved_tool_names_are_refused() -> None:
    @tool
    def llm_query(prompt: str) -> str:
        """Clashes with the REPL."""
        return prompt

    with pytest.raises(ConfigurationError, match="reserved"):
        rlm().bind_tools([llm_query])


class ByPromptRoot(FakeMessagesListChatModel):
    """Calls the tool first; after the results, answers from its REPL state; on a fresh run that already sees a
    tool result in the conversation, answers 'fresh'."""

    responses: list = Field(default_factory=list)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        text = "\n".join(m.text for m in messages)
        if "The caller ran your tool calls" in text:
            code = "FINAL(f'{secret + 1}:{list(tool_results.values())[0]}')"
        elif "tool result 7" in text:
            code = "FINAL('fresh')"
        else:
            code = "secret = 41\nmagic(3)"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(repl(code)))])


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_cached_paused_answer_never_resumes_another_conversation(mode: str) -> None:
    set_llm_cache(InMemoryCache())
    try:
        bound = ChatRLM(root=ByPromptRoot(), sub=ScriptedSub(), sandbox="inprocess").bind_tools([magic])

        def invoke(messages):
            return bound.invoke(messages) if mode == "sync" else asyncio.run(bound.ainvoke(messages))

        question = HumanMessage("What is magic(3)?")
        first = invoke([question])  # conversation A: a real run, paused
        second = invoke([question])  # conversation B: the same question, answered from the cache
        a_id, b_id = first.tool_calls[0]["id"], second.tool_calls[0]["id"]
        assert a_id.startswith("call_rlm_") and a_id != b_id and not b_id.startswith("call_rlm_")
        b_answer = invoke([question, second, ToolMessage("tool result 7", tool_call_id=b_id)])
        assert b_answer.text == "fresh"  # B ran afresh over its own conversation, A's REPL untouched
        a_answer = invoke([question, first, ToolMessage("103", tool_call_id=a_id)])
        assert a_answer.text == "42:103"
    finally:
        set_llm_cache(None)


def test_tool_call_ids_are_unique_per_pause() -> None:
    root = Root(responses=[AIMessage(repl("magic(1)")), AIMessage(repl("magic(2)"))], prompts=[])
    bound = ChatRLM(root=root, sub=ScriptedSub(), sandbox="inprocess").bind_tools([magic])
    first = bound.invoke("q")
    second = bound.invoke(["q", first, ToolMessage("1", tool_call_id=first.tool_calls[0]["id"])])
    ids = [first.tool_calls[0]["id"], second.tool_calls[0]["id"]]
    assert len(set(ids)) == 2 and ids[0].rsplit("_", 1)[0] != ids[1].rsplit("_", 1)[0]
