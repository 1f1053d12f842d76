"""`save` / `RLMAgent.load`: the conversation and the REPL's picklable variables come back, on another sandbox
kind too; what cannot be pickled is listed with the reason (docker and e2b targets: tests/integration_tests/agent)."""

from __future__ import annotations

import zipfile

import pytest

from rlm_plugins import RLMAgent
from rlm_plugins.agent import AgentStateError
from rlm_plugins.errors import RLMError
from tests.unit_tests.agent._saving import build, check_reloaded, check_report, reload


@pytest.mark.parametrize(("source", "target"), [("local", "inprocess"), ("inprocess", "local"), ("local", "local")])
def test_round_trip_across_sandbox_kinds(source: str, target: str, tmp_path) -> None:
    path = tmp_path / "agent.zip"
    with build(source) as agent:
        check_report(agent.save(path), path)
    loaded, root = reload(path, target)
    with loaded:
        check_reloaded(loaded, root)


def test_save_before_any_turn_keeps_the_contexts(tmp_path) -> None:
    agent = RLMAgent(lambda m: "", sub_model=lambda p: "", sandbox="inprocess")
    agent.add_context("table", {"rows": [1, 2, 3]})
    report = agent.save(tmp_path / "a.zip")
    assert report.saved == ["table"] and report.skipped == {}
    loaded = RLMAgent.load(tmp_path / "a.zip", lambda m: "", sub_model=lambda p: "", sandbox="local")
    with loaded:
        assert loaded.restored is not None and loaded.restored.saved == ["table"]
        assert loaded.session.sandbox.execute("print(table['rows'][-1])").stdout == "3\n"  # type: ignore[union-attr]
        assert loaded.turns == 0 and "table" in loaded.contexts


def test_an_agent_that_never_ran_saves_no_variables(tmp_path) -> None:
    agent = RLMAgent(lambda m: "", sub_model=lambda p: "", sandbox="inprocess")
    assert agent.save(tmp_path / "empty.zip").saved == []
    with zipfile.ZipFile(tmp_path / "empty.zip") as archive:
        assert archive.namelist() == ["agent.json"]
    assert RLMAgent.load(tmp_path / "empty.zip", lambda m: "", sub_model=lambda p: "").session.sandbox is None


def test_a_file_that_is_not_an_agent_file_is_refused(tmp_path) -> None:
    (tmp_path / "bad.zip").write_text("not a zip")
    with pytest.raises(AgentStateError, match="not an agent file") as caught:
        RLMAgent.load(tmp_path / "bad.zip", lambda m: "", sub_model=lambda p: "")
    assert isinstance(caught.value, RLMError)


def test_a_failed_save_leaves_the_earlier_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "agent.zip"
    with build("inprocess") as agent:
        agent.save(path)
        before = path.read_bytes()
        monkeypatch.setattr("rlm_plugins.agent._persist.dump_variables", _fail)
        with pytest.raises(AgentStateError):
            agent.save(path)
    assert path.read_bytes() == before


def _fail(*args: object) -> None:
    raise AgentStateError("the REPL could not save its variables: boom")
