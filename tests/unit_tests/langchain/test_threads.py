"""ChatRLM in a multi-turn LangGraph graph keeps one REPL per thread: the checkpointer's `thread_id` selects it."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langgraph.checkpoint.memory import MemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from rlm_plugins.langchain import ChatRLM
from tests.unit_tests.langchain.scripted import ScriptedSub, repl

REMEMBER = repl("saved = 41\nFINAL('noted')")
RECALL = repl("try:\n    FINAL(f'{saved + 1}')\nexcept NameError:\n    FINAL('nothing saved')")


def rlm(*codes: str, **options: Any) -> ChatRLM:
    """A ChatRLM whose root writes `codes` in order, one per root turn."""
    root = FakeMessagesListChatModel(responses=[AIMessage(code) for code in codes])
    return ChatRLM(root=root, sub=ScriptedSub(), sandbox=options.pop("sandbox", "local"), **options)


def graph(model: ChatRLM, checkpointer: Any = None) -> Any:
    """The smallest chat graph: one node that calls `model` on the thread's messages."""

    def chat(state: MessagesState) -> dict:
        return {"messages": [model.invoke(state["messages"])]}

    async def achat(state: MessagesState) -> dict:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", RunnableLambda(chat, afunc=achat))
    builder.add_edge(START, "chat")
    return builder.compile(checkpointer=checkpointer or MemorySaver())


async def turn(app: Any, thread: str, text: str, mode: str) -> AIMessage:
    config = {"configurable": {"thread_id": thread}}
    state = (
        app.invoke({"messages": [("user", text)]}, config)
        if mode == "sync"
        else await app.ainvoke({"messages": [("user", text)]}, config)
    )
    return state["messages"][-1]


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("sandbox", ["local", "inprocess"])
async def test_a_thread_keeps_its_repl_and_another_thread_does_not_see_it(mode: str, sandbox: str) -> None:
    model = rlm(REMEMBER, RECALL, RECALL, sandbox=sandbox)
    app = graph(model)
    first = await turn(app, "a", "Remember 41.", mode)
    other = await turn(app, "b", "What did I ask you to remember, plus one?", mode)
    second = await turn(app, "a", "What did I ask you to remember, plus one?", mode)
    assert (first.text, other.text, second.text) == ("noted", "nothing saved", "42")
    sessions = [m.response_metadata["rlm"]["session"] for m in (first, other, second)]
    assert [(s["thread_id"], s["turn"], s["new_session"]) for s in sessions] == [
        ("a", 0, True),
        ("b", 0, True),
        ("a", 1, False),
    ]
    assert model.close_thread("a") and model.close_thread("b")
    assert not model.close_thread("a")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_the_second_turn_sees_the_first_turns_input_and_history(mode: str) -> None:
    model = rlm(repl("FINAL('ok')"), repl("FINAL(f'{context_0} | {history[-1][\"content\"]} | {context}')"))
    app = graph(model)
    await turn(app, "t", "first", mode)
    answer = await turn(app, "t", "second", mode)
    assert answer.text.startswith("first | FINAL: ok | ")
    assert answer.text.endswith("[user] second")
    model.close_thread("t")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_thread_this_process_has_no_session_for_starts_a_new_one_and_says_so(mode: str) -> None:
    saver = MemorySaver()
    first = rlm(REMEMBER)
    await turn(graph(first, saver), "a", "Remember 41.", mode)
    first.close_thread("a")  # as if the process had restarted: the checkpointer has the thread, nothing else does
    answer = await turn(graph(rlm(RECALL), saver), "a", "What did I ask you to remember, plus one?", mode)
    assert answer.text == "nothing saved"
    session = answer.response_metadata["rlm"]["session"]
    assert session["new_session"] is True and session["turn"] == 0
    assert "could not be resumed" in session["note"] and "no session is stored" in session["note"]


def test_calls_without_a_thread_or_with_thread_sessions_off_share_nothing() -> None:
    model = rlm(REMEMBER, RECALL)
    assert "session" not in model.invoke("Remember 41.").response_metadata["rlm"]
    assert model.invoke("Recall.").text == "nothing saved"
    off = rlm(REMEMBER, RECALL, thread_sessions=False)
    config = {"configurable": {"thread_id": "x"}}
    off.invoke("Remember 41.", config)
    answer = off.invoke("Recall.", config)
    assert answer.text == "nothing saved" and "session" not in answer.response_metadata["rlm"]


def test_a_direct_call_with_a_thread_id_in_its_config_uses_the_thread() -> None:
    model = rlm(REMEMBER, RECALL)
    config = {"configurable": {"thread_id": "direct"}}
    model.invoke("Remember 41.", config)
    assert model.invoke("Recall.", config).text == "42"
    model.close_thread("direct")


class ByQuestion(FakeMessagesListChatModel):
    """Writes the code for the newest of the questions "Remember 41.", "Crash." and "Recall." in its prompt."""

    def _generate(self, messages: list, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        text = "\n".join(m.text for m in messages)
        newest = max(("Remember 41.", "Crash.", "Recall."), key=text.rfind)
        code = {"Remember 41.": REMEMBER, "Crash.": repl("import os\nos._exit(3)"), "Recall.": RECALL}[newest]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(code))])


def test_a_failed_turn_closes_the_threads_sandbox_and_the_next_turn_starts_afresh() -> None:
    model = ChatRLM(root=ByQuestion(responses=[]), sub=ScriptedSub(), sandbox="local", max_iterations=1)
    config = {"configurable": {"thread_id": "f"}}
    model.invoke("Remember 41.", config)
    crashed = model.invoke("Crash.", config)
    assert crashed.response_metadata["rlm"]["finish_reason"] == "sandbox_error"
    again = model.invoke([("user", "Remember 41."), ("ai", "noted"), ("user", "Recall.")], config)
    assert again.text == "nothing saved" and again.response_metadata["rlm"]["session"]["new_session"] is True
    model.close_thread("f")


@tool
def double(x: int) -> int:
    """Double x."""
    return 2 * x


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_tool_calling_agent_keeps_its_repl_across_turns_and_tool_pauses(mode: str) -> None:
    model = rlm(
        repl("saved = 20\ndouble(saved)"),
        repl("saved = int(tool_results[list(tool_results)[-1]])\nFINAL(f'doubled: {saved}')"),
        repl("FINAL(f'{saved + 2}')"),
    )
    agent = create_agent(model, [double], checkpointer=MemorySaver())
    config = {"configurable": {"thread_id": "agent"}}

    async def ask(text: str) -> list:
        payload = {"messages": [("user", text)]}
        state = agent.invoke(payload, config) if mode == "sync" else await agent.ainvoke(payload, config)
        return state["messages"]

    messages = await ask("Double 20.")
    assert isinstance(messages[-2], ToolMessage) and messages[-2].content == "40"
    assert messages[-1].text == "doubled: 40"
    assert messages[-1].response_metadata["rlm"]["session"]["turn"] == 0
    messages = await ask("Add two.")
    assert messages[-1].text == "42"
    assert messages[-1].response_metadata["rlm"]["session"] == {
        "thread_id": "agent",
        "turn": 1,
        "new_session": False,
        "note": "turn 1 of thread 'agent': the REPL of the earlier turns, resumed",
    }
    assert model.close_thread("agent")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_long_message_sent_again_with_the_conversation_is_not_uploaded_again(mode: str) -> None:
    model = rlm(
        repl("n = len(context)\nFINAL(n)"),
        repl("FINAL(f'{context_1 is context_0} {context is context_0} {n}')"),
        context_threshold=1_000,
    )
    app = graph(model)
    await turn(app, "long", "x" * 5_000, mode)
    answer = await turn(app, "long", "Is it the same document?", mode)
    assert answer.text == "True True 5000"
    model.close_thread("long")


class AtTheGate(FakeMessagesListChatModel):
    """Answers once every caller of `gate` has reached it, so two turns surely overlap."""

    gate: Any = None

    def _generate(self, messages: list, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        self.gate.wait()
        return super()._generate(messages, stop, run_manager, **kwargs)


def test_two_turns_at_once_on_one_thread_both_answer_and_one_repl_is_kept() -> None:
    from rlm_plugins.core import _held

    root = AtTheGate(responses=[AIMessage(REMEMBER)], gate=threading.Barrier(2, timeout=60))
    model = ChatRLM(root=root, sub=ScriptedSub(), sandbox="local")
    config = {"configurable": {"thread_id": "both"}}
    before = len(_held._HELD)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda text: model.invoke(text, config), ["Remember 41.", "Remember 41 too."]))
    assert [a.text for a in answers] == ["noted", "noted"]
    assert all(a.response_metadata["rlm"]["session"]["new_session"] for a in answers)
    assert len(_held._HELD) == before + 1  # the other turn's sandbox was closed, not left held until thread_ttl
    assert model.close_thread("both")
    assert len(_held._HELD) == before


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_batch_runs_each_input_on_its_own_configs_thread(mode: str) -> None:
    model = rlm(REMEMBER, sandbox="inprocess")
    configs = [{"configurable": {"thread_id": thread}} for thread in ("p", "q")]
    prompts = ["Remember 41.", "Remember 41."]
    first = model.batch(prompts, configs) if mode == "sync" else await model.abatch(prompts, configs)
    assert [m.response_metadata["rlm"]["session"]["thread_id"] for m in first] == ["p", "q"]
    recall = rlm(RECALL, sandbox="inprocess", session_store=model.sessions)
    answers = (
        recall.batch(["Recall."] * 2, configs) if mode == "sync" else await recall.abatch(["Recall."] * 2, configs)
    )
    assert [m.text for m in answers] == ["42", "42"]
    assert model.close_thread("p") and model.close_thread("q")
