"""The 5-turn agent conversation on the docker sandbox and on e2b over the fake envd (sync and async)."""

from __future__ import annotations

import pytest

from tests.unit_tests.agent._conversation import check, converse, new_agent

pytestmark = pytest.mark.filterwarnings("ignore:E2BSandbox uploads the driver")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_five_turns_e2b(mode: str, e2b_options: dict, envd) -> None:
    agent, _ = new_agent("e2b", sandbox_options=e2b_options)
    with agent:
        check(agent, converse(agent, mode))
        assert agent.session.sandbox is not None and agent.session.sandbox.kind == "e2b"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_five_turns_docker(mode: str, docker_engine) -> None:
    agent, _ = new_agent("docker", sandbox_options=docker_engine.options)
    with agent:
        check(agent, converse(agent, mode))
        container = agent.session.sandbox.container_id  # type: ignore[union-attr]
    assert container is not None
    assert not any(container.startswith(c) for c in docker_engine.leftovers(mine=False))
