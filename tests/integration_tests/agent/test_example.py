"""`examples/agent_chat.py` runs offline on a scripted root model: tools, a streamed turn, save and load."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "agent_chat.py"


@pytest.mark.parametrize("sandbox", ["local", "inprocess"])
def test_agent_example_runs_offline(sandbox: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    argv = [sys.executable, str(EXAMPLE), "--offline", "--sandbox", sandbox]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout[done.stdout.index("\n{") :])
    assert report["answers"] == [
        "billing has the most errors (5,334)",
        "Bo is on call for billing; paged Bo: billing: 5334 errors",
        "auth: 2,667, billing: 5,334, mail: 2,667, search: 2,666",
    ]
    events = report["events"]
    assert events[:3] == ["StepStarted", "Code", "Output"] and events[-1] == "Done"
    assert events[-2] == "AnswerChunk"
    assert {"errors", "worst", "log", "history_0"} <= set(report["saved"]) and report["not_saved"] == {}
    assert report["turns"] == 3
