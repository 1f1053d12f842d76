"""Sessions: one REPL across turns on every sandbox kind; contexts load once; idle expiry; budgets."""

from __future__ import annotations

import asyncio
import time

import pytest

from rlm_plugins import RLM
from rlm_plugins.core.budget import Limits
from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.session import Session
from rlm_plugins.errors import SessionBusyError, SessionExpiredError
from tests.unit_tests.core._scripted import by_marker, engine, repl
from tests.unit_tests.repl.conftest import ALL_LEVELS, wait_until_gone

BIG = 20_000  # characters: above the inline-value size, so each context travels as a file (an upload on E2B)

THREE_TURNS = {
    "turn-A": [repl("a = len(context)\nFINAL(a)")],
    "turn-B": [repl("FINAL([a, len(context), len(context_0), context is context_1, history[-1]['content']])")],
    "turn-C": [
        repl(
            "FINAL([len(context_0), len(context_1), len(context_2), history is history_1, "
            "history_0[-1]['content'], 'context_3' in globals()])"
        )
    ],
}


def converse(session: Session, mode: str) -> list:
    turns = [("A" * BIG, "turn-A"), ("B" * (BIG + 1), "turn-B"), ("C" * (BIG + 2), "turn-C")]
    if mode == "sync":
        return [session.completion(prompt, root_prompt=q) for prompt, q in turns]

    async def go() -> list:
        return [await session.acompletion(prompt, root_prompt=q) for prompt, q in turns]

    return asyncio.run(go())


def check_three_turns(results: list) -> None:
    assert [r.finish_reason for r in results] == ["final"] * 3
    assert results[0].answer == BIG
    assert results[1].answer == [BIG, BIG + 1, BIG, True, f"FINAL: {BIG}"]
    assert results[2].answer == [BIG, BIG + 1, BIG + 2, True, f"FINAL: {BIG}", False]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_three_turns_inprocess(mode: str) -> None:
    with Session(engine(by_marker(THREE_TURNS))) as session:
        check_three_turns(converse(session, mode))
        assert session.turns == 3


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_three_turns_local_every_level(level: str, mode: str) -> None:
    session = Session(engine(by_marker(THREE_TURNS), sandbox="local", sandbox_options={"isolation": level}))
    results = converse(session, mode)
    check_three_turns(results)
    assert session.sandbox is not None and session.sandbox.isolation == level
    pid = session.sandbox._proc.pid
    session.close()
    assert wait_until_gone(pid) == set()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_three_turns_e2b_upload_each_context_once(mode: str, envd, e2b_options) -> None:
    before = len(envd.uploads)
    with Session(engine(by_marker(THREE_TURNS), sandbox="e2b", sandbox_options=e2b_options)) as session:
        check_three_turns(converse(session, mode))
    uploads = [path.rsplit("-", 1)[-1] for path, _ in envd.uploads[before:] if "/ctx-" in path]
    assert uploads == ["context_0", "context_1", "context_2"]


def test_idle_session_releases_its_sandbox_and_then_refuses() -> None:
    session = Session(engine(by_marker(THREE_TURNS), sandbox="local"), idle_timeout=0.2)
    assert session.completion("A" * BIG, root_prompt="turn-A").answer == BIG
    pid = session.sandbox._proc.pid
    deadline = time.monotonic() + 30
    while session.sandbox is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert wait_until_gone(pid) == set()
    with pytest.raises(SessionExpiredError, match=r"idle_timeout=0\.2s"):
        session.completion("B", root_prompt="turn-B")


def test_closed_session_refuses_clearly() -> None:
    session = Session(engine(by_marker(THREE_TURNS)))
    session.close()
    with pytest.raises(SessionExpiredError, match="closed"):
        session.completion("A", root_prompt="turn-A")


def test_one_turn_at_a_time() -> None:
    session = Session(engine(by_marker({"turn-A": [repl("FINAL(1)")]})))
    session._begin("x", "turn-A")
    with pytest.raises(SessionBusyError):
        session.completion("y", root_prompt="turn-A")
    session.close()


def _calls_engine(limits: Limits):
    spend = {"spend": [repl("r = llm_query_batched(['a', 'b'])\nFINAL(r)")]}
    return engine(by_marker(spend), sub=CallableSubModel(lambda p: "ok", name="sub"), limits=limits)


def test_budget_is_per_turn_by_default() -> None:
    with Session(_calls_engine(Limits(max_llm_calls=3))) as session:
        assert [session.completion("x", "spend").answer for _ in range(2)] == [["ok", "ok"]] * 2


def test_session_budget_spans_turns() -> None:
    with Session(_calls_engine(Limits(max_llm_calls=3)), budget="session") as session:
        assert session.completion("x", "spend").answer == ["ok", "ok"]
        second = session.completion("x", "spend")
        assert second.answer[0].startswith("[Error] sub-call budget exhausted")


def test_standalone_rlm_persistent() -> None:
    from rlm_plugins.core.chat_policy import ChatPolicy

    policy = ChatPolicy(by_marker(THREE_TURNS), model="root")
    with RLM(
        policy=policy, sub_model=CallableSubModel(str.upper, name="sub"), sandbox="inprocess", persistent=True
    ) as rlm:
        results = [rlm.completion("A" * BIG, "turn-A"), rlm.completion("B" * (BIG + 1), "turn-B")]
        assert results[1].answer[:3] == [BIG, BIG + 1, BIG]
    with pytest.raises(SessionExpiredError):
        rlm.completion("C", "turn-C")
