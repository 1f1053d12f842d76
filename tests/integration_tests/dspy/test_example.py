"""The GEPA root-prompt example runs offline end to end: GEPA rewrites `generate_action` and the score rises."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from tests._examples import run_example

ROOT = pathlib.Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "dspy_gepa_root_prompt.py"


@pytest.mark.parametrize("sandbox", ["local", "inprocess"])
def test_gepa_root_prompt_example_runs_offline(sandbox):
    report = run_example(EXAMPLE.name, "--sandbox", sandbox, timeout=120)
    assert report["score_before"] == 0.0
    assert report["score_after"] == 100.0
    assert report["score_reloaded"] == 100.0
    assert report["instructions_changed"] is True
    assert report["new_instructions_head"].startswith("Count occurrences in code")


def test_gepa_example_stops_at_once_when_its_model_is_unreachable():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "OPENAI_API_KEY": "sk-test"}
    argv = [sys.executable, str(EXAMPLE), "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1"]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 2
    assert "openai/x is unreachable" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
