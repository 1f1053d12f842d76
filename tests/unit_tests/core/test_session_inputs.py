"""Session turns that bring named inputs (a DSPy call's fields) instead of, or beside, a prompt."""

from __future__ import annotations

import asyncio

import pytest

from rlm_plugins.core.session import Session
from tests.unit_tests.core._scripted import by_marker, engine, repl

TURNS = {
    "turn-A": [repl("kept = question * 2\nFINAL([question, 'context' in globals(), 'context_0' in globals()])")],
    "turn-B": [repl("FINAL([kept, question, history, len(history_0)])")],
    "turn-C": [repl("FINAL([question, context, history[-1]['content'], kept])")],
}


def turn(session: Session, mode: str, prompt, query: str, inputs: dict):
    if mode == "sync":
        return session.completion(prompt, query, inputs=inputs)
    return asyncio.run(session.acompletion(prompt, query, inputs=inputs))


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_inputs_load_by_name_and_an_input_named_history_wins_over_the_alias(mode: str) -> None:
    with Session(engine(by_marker(TURNS))) as session:
        first = turn(session, mode, None, "turn-A", {"question": "ab"})
        second = turn(session, mode, None, "turn-B", {"question": "cd", "history": ["mine"]})
        third = turn(session, mode, "ctx", "turn-C", {"question": "ef"})
    assert first.answer == ["ab", False, False], "no prompt: no context_<n> and no `context`"
    assert second.answer[:3] == ["abab", "cd", ["mine"]]
    assert second.answer[3] > 0, "the session's own history_<n> is still loaded"
    assert third.answer[:2] == ["ef", "ctx"]
    assert third.answer[2].startswith("FINAL: ") and third.answer[3] == "abab"
