"""The LangGraph example the README points to runs offline, on scripted models, and shows what it claims."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "langgraph_threads.py"


def test_the_langgraph_threads_example_runs_offline() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--offline"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    answers = [line for line in lines if line.startswith(("alice", "bob"))]
    assert answers == [
        "alice (turn 0, new session: True): Feb: 5,000,000 EUR",
        "alice (turn 1, new session: False): Jan: 4,990,000 EUR",
        "bob (turn 0, new session: True): I have no sales figures in this conversation yet",
    ]
    assert "  [alice] progress: rlm_code_executed" in lines
