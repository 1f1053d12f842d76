"""Streaming a ChatRLM turn: progress first (custom events, LangGraph's "custom" mode), then the answer's chunks."""

from __future__ import annotations

import asyncio
import threading
import warnings
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatResult

from rlm_plugins.langchain import ChatRLM
from tests.unit_tests.langchain.scripted import ScriptedSub, repl
from tests.unit_tests.langchain.test_callbacks import CONFIG, PROMPT, check, model, traced
from tests.unit_tests.langchain.test_threads import RECALL, REMEMBER, graph, rlm

LOOK = repl("x = llm_query('hi')\nprint(x)")
ANSWER = repl("FINAL(x)")
STEPS = [
    "rlm_run_started",
    "rlm_turn_started",
    "rlm_root_step",
    "rlm_sub_call",
    "rlm_code_executed",
    "rlm_turn_finished",
    "rlm_turn_started",
    "rlm_root_step",
]
THREAD = {"configurable": {"thread_id": "s"}}


def question() -> dict:
    return {"messages": [("user", "hello")]}


def check_progress(names: list[str]) -> None:
    assert names[: len(STEPS)] == STEPS
    assert names[-4:] == ["rlm_code_executed", "rlm_turn_finished", "rlm_final", "rlm_run_finished"]


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_graph_streams_the_runs_progress_in_custom_mode_before_the_answer(mode: str) -> None:
    app = graph(rlm(LOOK, ANSWER, sandbox="inprocess"))
    modes = ["custom", "messages"]
    if mode == "sync":
        items = list(app.stream(question(), THREAD, stream_mode=modes))
    else:
        items = [item async for item in app.astream(question(), THREAD, stream_mode=modes)]
    custom = [chunk for kind, chunk in items if kind == "custom"]
    check_progress([item["name"] for item in custom])
    sub_call = next(item for item in custom if item["name"] == "rlm_sub_call")
    assert sub_call["data"]["response"].startswith("Scripted answer")
    kinds = [kind for kind, _ in items]
    assert kinds.index("messages") > max(i for i, kind in enumerate(kinds) if kind == "custom")
    answer = "".join(chunk.text for kind, (chunk, _) in items if kind == "messages")  # type: ignore[misc]
    assert answer == "Scripted answer (2 chars): hi"


class Waiting(FakeMessagesListChatModel):
    """Writes its second reply only once `go` is set: the test sets it when the first step's output has streamed."""

    go: Any = None
    written: Any = None  # Any: pydantic keeps the caller's list, not a copy

    def _generate(self, messages: list, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        turn = len(self.written)
        if turn == 1:
            assert self.go.wait(60)
        self.written.append(turn)
        return ChatResult(generations=[ChatGeneration(message=self.responses[turn])])

    async def _agenerate(self, messages: list, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
        if len(self.written) == 1:
            assert await asyncio.to_thread(self.go.wait, 60)
        return self._generate(messages, stop, run_manager, **kwargs)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_progress_streams_while_the_run_is_still_going(mode: str) -> None:
    go, written = threading.Event(), []
    root = Waiting(responses=[AIMessage(LOOK), AIMessage(ANSWER)], go=go, written=written)
    app = graph(ChatRLM(root=root, sub=ScriptedSub(), sandbox="inprocess"))
    seen: list[str] = []

    def see(item: dict) -> None:
        seen.append(item["name"])
        if item["name"] == "rlm_code_executed" and not go.is_set():
            assert written == [0]  # the root has not written its answer yet
            go.set()

    if mode == "sync":
        for item in app.stream(question(), THREAD, stream_mode="custom"):
            see(item)
    else:
        async for item in app.astream(question(), THREAD, stream_mode="custom"):
            see(item)
    check_progress(seen)


async def test_astream_events_of_a_thread_show_progress_then_the_answer_tokens() -> None:
    model = rlm(REMEMBER, RECALL, sandbox="inprocess")
    app = graph(model)
    await app.ainvoke({"messages": [("user", "Remember 41.")]}, THREAD)
    events = [e async for e in app.astream_events({"messages": [("user", "Recall.")]}, THREAD, version="v2")]
    chat = [e for e in events if e["event"].startswith(("on_chat_model", "on_custom_event"))]
    start = chat[0]
    assert start["event"] == "on_chat_model_start" and start["name"] == "ChatRLM"
    custom = [e for e in chat if e["event"] == "on_custom_event"]
    assert custom[0]["name"] == "rlm_run_started" and custom[-1]["name"] == "rlm_run_finished"
    assert all(e["run_id"] == start["run_id"] for e in custom)
    kinds = [e["event"] for e in chat]
    assert kinds.index("on_chat_model_stream") > kinds.index("on_custom_event") + len(custom) - 1
    end = chat[-1]
    assert end["event"] == "on_chat_model_end" and end["data"]["output"].text == "42"
    assert end["data"]["output"].response_metadata["rlm"]["session"]["turn"] == 1
    model.close_thread("s")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_stream_on_a_thread_continues_its_repl(mode: str) -> None:
    model = rlm(REMEMBER, RECALL, sandbox="inprocess")

    async def chunks(text: str) -> list[AIMessageChunk]:
        if mode == "sync":
            return list(model.stream(text, THREAD))
        return [chunk async for chunk in model.astream(text, THREAD)]

    await chunks("Remember 41.")
    pieces = await chunks("Recall.")
    whole = pieces[0]
    for piece in pieces[1:]:
        whole += piece
    assert whole.text == "42"
    assert whole.response_metadata["rlm"]["session"]["new_session"] is False
    model.close_thread("s")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_stream_events_v3_hands_the_run_manager_to_stream_so_inner_runs_nest(mode: str) -> None:
    """The v2 streaming protocol of langchain-core (`stream_events(version="v3")`) passes the run manager to
    `_stream`, unlike v1 `stream()`: inner calls are children of the ChatRLM run, steps are its custom events."""
    tracer, client, plain = traced()
    config = {**CONFIG, "callbacks": [tracer, plain]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # v3 is beta in langchain-core
        if mode == "sync":
            text = "".join(model().stream_events(PROMPT, config, version="v3").text)
        else:
            stream = await model().astream_events(PROMPT, config, version="v3")
            text = "".join([piece async for piece in stream.text])
    assert text.startswith("Scripted answer")
    check(tracer, client, plain)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_stream_events_v3_on_a_thread_continues_its_repl(mode: str) -> None:
    model = rlm(REMEMBER, RECALL, sandbox="inprocess")

    async def text(prompt: str) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # v3 is beta in langchain-core
            if mode == "sync":
                return "".join(model.stream_events(prompt, THREAD, version="v3").text)
            stream = await model.astream_events(prompt, THREAD, version="v3")
            return "".join([piece async for piece in stream.text])

    assert await text("Remember 41.") == "noted"
    assert await text("Recall.") == "42"
    assert model.close_thread("s")
