"""A conversation saved from a local sandbox continues on docker and on e2b (over the fake envd), and back."""

from __future__ import annotations

import pytest

from tests.unit_tests.agent._saving import build, check_reloaded, check_report, reload

pytestmark = pytest.mark.filterwarnings("ignore:E2BSandbox uploads the driver")


def test_local_to_e2b(tmp_path, e2b_options: dict, envd) -> None:
    path = tmp_path / "agent.zip"
    with build("local") as agent:
        check_report(agent.save(path), path)
    loaded, root = reload(path, "e2b", sandbox_options=e2b_options)
    with loaded:
        check_reloaded(loaded, root)


def test_e2b_to_local(tmp_path, e2b_options: dict, envd) -> None:
    path = tmp_path / "agent.zip"
    with build("e2b", sandbox_options=e2b_options) as agent:
        check_report(agent.save(path), path)
    loaded, root = reload(path, "local")
    with loaded:
        check_reloaded(loaded, root)


def test_local_to_docker_and_back(tmp_path, docker_engine) -> None:
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    with build("local") as agent:
        check_report(agent.save(first), first)
    loaded, root = reload(first, "docker", sandbox_options=docker_engine.options)
    with loaded:
        check_reloaded(loaded, root)
        report = loaded.save(second)
    assert {"index", "total", "js"} <= set(report.saved) and set(report.skipped) == set()
    again, _ = reload(second, "local")
    with again:
        assert again.turns == 3 and again.memory.exchanges[-1].message == "[after] still there?"
