"""`examples/dspy_history_chat.py` runs offline: later turns reuse the REPL variables of turn 1 and read `history`,
and a second conversation starts in a fresh REPL."""

from __future__ import annotations

import pytest

from tests._examples import run_example


@pytest.mark.parametrize("sandbox", ["local", "inprocess"])
def test_history_chat_example_runs_offline(sandbox):
    report = run_example("dspy_history_chat.py", "--sandbox", sandbox)
    assert report["answers"] == ["6 sales parsed", "north (170)", "120", "4 turns"]
    assert report["fresh_conversation"] == ["unknown"], "a new conversation must not see `sales` or `best`"
