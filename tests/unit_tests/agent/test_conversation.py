"""Five turns in one REPL on the in-process and local sandboxes (sync and async); the other kinds are in
tests/integration_tests/agent."""

from __future__ import annotations

import pytest

from tests.unit_tests.agent._conversation import check, converse, new_agent
from tests.unit_tests.repl.conftest import ALL_LEVELS


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_five_turns_inprocess(mode: str) -> None:
    agent, _ = new_agent("inprocess")
    with agent:
        check(agent, converse(agent, mode))


@pytest.mark.parametrize("level", ALL_LEVELS)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_five_turns_local(mode: str, level: str) -> None:
    agent, _ = new_agent("local", sandbox_options={"isolation": level})
    with agent:
        check(agent, converse(agent, mode))
        assert agent.session.sandbox is not None and agent.session.sandbox.isolation == level
