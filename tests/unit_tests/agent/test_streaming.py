"""`chat(..., stream=True)` and `achat(..., stream=True)`: typed events in order, answer chunks, usage, cancel."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rlm_plugins import RLMAgent
from rlm_plugins.agent import AnswerChunk, Code, Done, Output, StepStarted, SubCallSummary
from rlm_plugins.errors import SessionBusyError
from tests.unit_tests.agent._scripted import ScriptedRoot, repl

LONG_ANSWER = " ".join(f"word{i}" for i in range(60))
SCRIPTS = {
    "s": [
        repl("parts = llm_query_batched(['a' * 10, 'b' * 20])\nprint(parts)"),
        repl(f"answer = {LONG_ANSWER!r}\nprint(len(answer))") + "\n" + repl("FINAL_VAR('answer')"),
    ],
    "slow": [repl("import time\nrunning()\nwhile True:\n    time.sleep(0.01)")],
}


def agent_for_streaming(sandbox: str = "inprocess", running: threading.Event | None = None) -> RLMAgent:
    agent = RLMAgent(ScriptedRoot(SCRIPTS), sub_model=lambda p: p.upper(), sandbox=sandbox, max_iterations=4)
    agent.register_tool("running", (running or threading.Event()).set)
    return agent


def shape(events: list) -> list[str]:
    """The event kinds in order, with the step of each step-scoped event."""
    out = []
    for event in events:
        step = getattr(event, "iteration", "")
        out.append(f"{type(event).__name__}{step}")
    return out


EXPECTED = [
    "StepStarted1",
    "Code1",
    "SubCallSummary",
    "SubCallSummary",
    "Output1",
    "StepStarted2",
    "Code2",
    "Code2",
    "Output2",
    "Output2",
]


def check_events(events: list) -> None:
    chunks = [e for e in events if isinstance(e, AnswerChunk)]
    assert shape(events)[: len(EXPECTED)] == EXPECTED
    assert shape(events)[len(EXPECTED) :] == ["AnswerChunk"] * len(chunks) + ["Done"]
    assert len(chunks) > 3 and "".join(c.text for c in chunks) == LONG_ANSWER
    done = events[-1]
    assert isinstance(done, Done) and done.answer == LONG_ANSWER and done.finish_reason == "final"
    assert done.iterations == 2
    assert done.usage["root"].calls == 2 and done.usage["<lambda>"].calls == 2
    assert done.total_usage.calls == 4
    subs = [e for e in events if isinstance(e, SubCallSummary)]
    assert sorted(s.prompt_chars for s in subs) == [10, 20] and sorted(s.response_chars for s in subs) == [10, 20]
    first_output = next(e for e in events if isinstance(e, Output))
    assert "AAAAAAAAAA" in first_output.stdout and not first_output.final
    assert [e.final for e in events if isinstance(e, Output)][-1] is True
    assert all(e.turn == 0 for e in events)
    starts = [e for e in events if isinstance(e, StepStarted)]
    assert [(s.iteration, s.max_iterations) for s in starts] == [(1, 4), (2, 4)]
    assert isinstance(events[1], Code) and "llm_query_batched" in events[1].code


def test_sync_stream_yields_events_in_order() -> None:
    with agent_for_streaming() as agent:
        events = list(agent.chat("[s] go", stream=True))
        check_events(events)
        assert agent.turns == 1 and agent.memory.exchanges[-1].answer == LONG_ANSWER


async def test_async_stream_yields_events_in_order() -> None:
    async with agent_for_streaming() as agent:
        events = [event async for event in agent.achat("[s] go", stream=True)]
        check_events(events)


def test_sync_stream_on_a_local_sandbox() -> None:
    with agent_for_streaming("local") as agent:
        check_events(list(agent.chat("[s] go", stream=True)))


def test_plain_chat_returns_the_answer_text() -> None:
    with agent_for_streaming() as agent:
        assert agent.chat("[s] go") == LONG_ANSWER


async def test_plain_achat_returns_the_answer_text() -> None:
    async with agent_for_streaming() as agent:
        assert await agent.achat("[s] go") == LONG_ANSWER


def test_closing_a_sync_stream_cancels_the_turn() -> None:
    running = threading.Event()
    with agent_for_streaming("local", running) as agent:
        stream = agent.chat("[slow] spin", stream=True)
        first = [next(stream), next(stream)]
        assert shape(first) == ["StepStarted1", "Code1"]
        assert running.wait(60)  # the loop is running in the REPL
        stream.close()  # the consumer stops: the running code is cancelled, the turn ends
        assert agent.last_result is not None and agent.last_result.finish_reason == "cancelled"
        assert agent.session.run is None
        assert agent.chat("[s] go") == LONG_ANSWER  # the REPL survived: the conversation goes on


async def test_closing_an_async_stream_cancels_the_turn() -> None:
    running = threading.Event()
    async with agent_for_streaming("local", running) as agent:
        stream = agent.achat("[slow] spin", stream=True)
        assert shape([await stream.__anext__(), await stream.__anext__()]) == ["StepStarted1", "Code1"]
        assert await asyncio.to_thread(running.wait, 60)
        await stream.aclose()
        assert agent.session.run is None
        assert await agent.achat("[s] go") == LONG_ANSWER


def test_one_turn_at_a_time() -> None:
    with agent_for_streaming("local") as agent:
        stream = agent.chat("[slow] spin", stream=True)
        next(stream), next(stream)
        with pytest.raises(SessionBusyError):
            agent.chat("[s] go")
        stream.close()


def test_stream_from_another_thread_while_the_loop_runs() -> None:
    """A sync stream consumed inside a running event loop (a notebook) works: the turn runs on its own thread."""

    async def inside_loop() -> list:
        with agent_for_streaming() as agent:
            return list(agent.chat("[s] go", stream=True))

    box: list = []
    thread = threading.Thread(target=lambda: box.append(asyncio.run(inside_loop())))
    thread.start()
    thread.join(60)
    check_events(box[0])
