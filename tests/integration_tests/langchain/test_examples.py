"""The LangChain examples the README points to run offline, on scripted models, as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.mark.parametrize("name", ["langchain_chain.py", "langchain_agent.py"])
def test_example_runs_offline(name):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--offline"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip()
