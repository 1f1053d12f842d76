"""The README's Python examples run as written (those that need a real model's key skip without one)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
NEEDS_MODEL = re.compile(r"openai[/:]|anthropic[/:]|ChatOpenAI|init_chat_model|dspy\.LM\(")


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, tmp_path, monkeypatch):
    if NEEDS_MODEL.search(code) and not os.environ.get("OPENAI_API_KEY"):
        pytest.skip("this example calls a real model: set OPENAI_API_KEY to run it")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
