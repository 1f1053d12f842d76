"""`Session.attach` and `Session.last_messages`, which the agent's contexts and `load` stand on."""

from __future__ import annotations

import pytest

from rlm_plugins.core.session import Session
from rlm_plugins.errors import SessionBusyError, SessionExpiredError
from rlm_plugins.repl import create_sandbox
from tests.unit_tests.core._scripted import by_marker, engine, repl

SCRIPT = {"turn": [repl("FINAL([len(context), saved, history[-1]['content'], len(context_7)])")]}


def test_an_attached_sandbox_continues_a_conversation_at_its_turn() -> None:
    sandbox = create_sandbox("inprocess")
    sandbox.execute("saved = 'from before'")
    with Session(engine(by_marker(SCRIPT))) as session:
        assert session.last_messages is None
        session.attach(sandbox, turns=7, history=[{"role": "assistant", "content": "FINAL: six"}])
        result = session.completion("abc", root_prompt="turn")
        assert result.answer == [3, "from before", "FINAL: six", 3]
        assert session.turns == 8 and session.last_messages is not None
        assert session.last_messages[-1]["content"] == 'FINAL: [3, "from before", "FINAL: six", 3]'
        assert "This is turn 8 of a conversation" in session.last_messages[0]["content"]


def test_attach_refuses_once_the_session_has_a_sandbox_or_is_closed() -> None:
    session = Session(engine(by_marker(SCRIPT)))
    session.attach(create_sandbox("inprocess"))
    with pytest.raises(SessionBusyError, match="before its first turn"):
        session.attach(create_sandbox("inprocess"))
    session.close()
    with pytest.raises(SessionExpiredError):
        session.attach(create_sandbox("inprocess"))
