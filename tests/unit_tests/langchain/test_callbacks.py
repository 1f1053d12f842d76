"""Tracing: inner calls are child runs of the ChatRLM run carrying only tracers; steps are custom events."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tracers import LangChainTracer
from langsmith import Client

from rlm_plugins.langchain import ChatRLM
from tests.unit_tests.langchain.scripted import ScriptedRoot, ScriptedSub

CONFIG = {"tags": ["outer-tag"], "metadata": {"who": "test"}, "run_name": "my-rlm"}


class PlainHandler(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts: list[dict[str, Any]] = []
        self.custom: list[str] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.starts.append(kwargs)

    def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
        self.custom.append(name)


def model() -> ChatRLM:
    return ChatRLM(root=ScriptedRoot(), sub=ScriptedSub(), sandbox="inprocess", context_threshold=100)


def traced() -> tuple[LangChainTracer, MagicMock, PlainHandler]:
    client = MagicMock(spec=Client)
    return LangChainTracer(client=client), client, PlainHandler()


def check(tracer: LangChainTracer, client: MagicMock, plain: PlainHandler, n_runs: int = 1) -> None:
    tracer.wait_for_futures()
    created = [call.kwargs for call in client.create_run.call_args_list]
    outer = [run for run in created if run["name"] == "my-rlm"]
    assert len(outer) == n_runs
    assert len(plain.starts) == n_runs  # the plain handler sees the ChatRLM runs only
    ids = {run["id"] for run in outer}
    inner = [run for run in created if run["name"] in ("ScriptedRoot", "ScriptedSub")]
    assert {run["name"] for run in inner} == {"ScriptedRoot", "ScriptedSub"}
    for run in inner:
        assert run["parent_run_id"] in ids
        assert "outer-tag" in run["tags"]
        assert run["extra"]["metadata"]["who"] == "test"
    assert "rlm_root_step" in plain.custom and "rlm_sub_call" in plain.custom


PROMPT = "Summarise this: " + "lorem ipsum " * 50


def test_invoke_nests_inner_calls() -> None:
    tracer, client, plain = traced()
    model().invoke(PROMPT, {**CONFIG, "callbacks": [tracer, plain]})
    check(tracer, client, plain)


async def test_ainvoke_nests_inner_calls() -> None:
    tracer, client, plain = traced()
    await model().ainvoke(PROMPT, {**CONFIG, "callbacks": [tracer, plain]})
    check(tracer, client, plain)


def test_batch_nests_each_run() -> None:
    tracer, client, plain = traced()
    model().batch([PROMPT, PROMPT + "!"], {**CONFIG, "callbacks": [tracer, plain]})
    check(tracer, client, plain, n_runs=2)


async def test_abatch_nests_each_run() -> None:
    tracer, client, plain = traced()
    await model().abatch([PROMPT, PROMPT + "!"], {**CONFIG, "callbacks": [tracer, plain]})
    check(tracer, client, plain, n_runs=2)


def test_stream_nests_inner_calls() -> None:
    tracer, client, plain = traced()
    chunks = list(model().stream(PROMPT, {**CONFIG, "callbacks": [tracer, plain]}))
    assert chunks[-1].chunk_position == "last"
    check(tracer, client, plain)


async def test_astream_nests_inner_calls() -> None:
    tracer, client, plain = traced()
    chunks = [c async for c in model().astream(PROMPT, {**CONFIG, "callbacks": [tracer, plain]})]
    assert chunks[-1].chunk_position == "last"
    check(tracer, client, plain)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_inside_an_lcel_chain(mode: str) -> None:
    tracer, client, plain = traced()
    chain = ChatPromptTemplate.from_messages([("user", "{question}")]) | model().with_config(run_name="my-rlm")
    config = {"tags": CONFIG["tags"], "metadata": CONFIG["metadata"], "callbacks": [tracer, plain]}
    if mode == "sync":
        chain.invoke({"question": PROMPT}, config)
    else:
        await chain.ainvoke({"question": PROMPT}, config)
    check(tracer, client, plain)


async def test_astream_events_show_steps_and_one_chat_model_run() -> None:
    tracer, client, plain = traced()
    events = [
        event async for event in model().astream_events(PROMPT, {**CONFIG, "callbacks": [tracer, plain]}, version="v2")
    ]
    starts = [e for e in events if e["event"] == "on_chat_model_start"]
    assert [e["name"] for e in starts] == ["my-rlm"]
    custom = [e for e in events if e["event"] == "on_custom_event"]
    names = [e["name"] for e in custom]
    assert names[0] == "rlm_run_started" and names[-1] == "rlm_run_finished"
    assert {"rlm_root_step", "rlm_code_executed", "rlm_sub_call", "rlm_final"} <= set(names)
    assert all(e["run_id"] == starts[0]["run_id"] for e in custom)
    end = next(e for e in events if e["event"] == "on_chat_model_end")
    assert end["data"]["output"].text.startswith("Scripted answer")
    check(tracer, client, plain)


def test_sub_calls_on_worker_threads_keep_their_parent() -> None:
    """llm_query_batched fans out on threads: each sub-run is still a child of the ChatRLM run."""
    tracer, client, plain = traced()
    long_doc = "x" * 5_000
    rlm = ChatRLM(root=ScriptedRoot(), sub=ScriptedSub(), sandbox="local", context_threshold=100)
    rlm.with_structured_output(
        {
            "title": "T",
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}, "c": {"type": "string"}},
            "required": ["a", "b", "c"],
        }
    ).invoke(long_doc, {**CONFIG, "callbacks": [tracer, plain]})
    tracer.wait_for_futures()
    created = [call.kwargs for call in client.create_run.call_args_list]
    outer = [run["id"] for run in created if run["name"] == "ChatRLM"]  # run_name named the chain
    subs = [run for run in created if run["name"] == "ScriptedSub"]
    assert len(subs) == 3 and all(run["parent_run_id"] == outer[0] for run in subs)
    assert len(plain.starts) == 1


async def test_astream_events_of_a_chain_stream_the_answer_tokens() -> None:
    chain = ChatPromptTemplate.from_messages([("user", "{q}")]) | model()
    events = [e async for e in chain.astream_events({"q": "Tell me a long story about RLMs please"}, version="v2")]
    streamed = [e["data"]["chunk"] for e in events if e["event"] == "on_chat_model_stream"]
    assert streamed and "".join(c.text for c in streamed).startswith("Scripted answer")
    assert streamed[-1].chunk_position == "last"
    assert {e["name"] for e in events if e["event"] == "on_chat_model_start"} == {"ChatRLM"}


def test_a_failing_inner_model_fails_the_run_and_closes_the_sandbox() -> None:
    class Broken(ScriptedRoot):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            raise RuntimeError("provider is down")

    plain = PlainHandler()
    errors: list[BaseException] = []

    class ErrorHandler(BaseCallbackHandler):
        def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
            errors.append(error)

    rlm = ChatRLM(root=Broken(), sub=ScriptedSub(), sandbox="local")
    with pytest.raises(RuntimeError, match="provider is down"):
        rlm.invoke("Hello", {"callbacks": [plain, ErrorHandler()]})
    assert len(plain.starts) == 1 and len(errors) == 1


async def test_astream_events_on_the_model_stream_the_answer_tokens() -> None:
    events = [e async for e in model().astream_events("Tell me a long story about RLMs please", version="v2")]
    kinds = [e["event"] for e in events]
    streamed = [e["data"]["chunk"] for e in events if e["event"] == "on_chat_model_stream"]
    assert streamed and "".join(c.text for c in streamed).startswith("Scripted answer")
    assert kinds.index("on_custom_event") < kinds.index("on_chat_model_stream") < kinds.index("on_chat_model_end")
    assert [e["name"] for e in events if e["event"] == "on_chat_model_start"] == ["ChatRLM"]
