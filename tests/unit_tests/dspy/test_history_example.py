"""`examples/dspy_history_chat.py` runs offline: later turns reuse the REPL variables of turn 1 and read `history`,
and a second conversation starts in a fresh REPL."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "dspy_history_chat.py"


@pytest.mark.parametrize("sandbox", ["local", "inprocess"])
def test_history_chat_example_runs_offline(sandbox):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--sandbox", sandbox],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["answers"] == ["6 sales parsed", "north (170)", "120", "4 turns"]
    assert report["fresh_conversation"] == ["unknown"], "a new conversation must not see `sales` or `best`"
