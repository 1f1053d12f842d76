"""The README's Python examples run as written.

Examples that call a real model make paid calls, so they run only with `RLM_LIVE_TESTS=1` (and the provider's
key); merely having `OPENAI_API_KEY` set never triggers them. Files an example opens are created first.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
NEEDS_MODEL = re.compile(r"openai[/:]|anthropic[/:]|ChatOpenAI|init_chat_model|dspy\.LM\(")
OPENED = re.compile(r"""open\(["']([^"']+)["']\)""")
LIVE = os.environ.get("RLM_LIVE_TESTS") == "1"


def data_files(code: str) -> list[str]:
    """The files an example reads with open("...")."""
    return OPENED.findall(code)


def sample_text(name: str) -> str:
    lines = [f"{name} line {i}: the supplier Acme shipped 3 crates; revenue rose in Q{i % 4 + 1}." for i in range(200)]
    return "\n".join(lines)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


def test_paid_examples_are_opt_in_only(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-anything")
    monkeypatch.delenv("RLM_LIVE_TESTS", raising=False)
    assert [skip_reason(code) for code in BLOCKS if NEEDS_MODEL.search(code)]
    assert all(skip_reason(code) for code in BLOCKS if NEEDS_MODEL.search(code))


def skip_reason(code: str) -> str | None:
    if NEEDS_MODEL.search(code) and os.environ.get("RLM_LIVE_TESTS") != "1":
        return "this example calls a real model (paid): set RLM_LIVE_TESTS=1 and the provider's key to run it"
    return None


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, tmp_path, monkeypatch):
    reason = skip_reason(code)
    if reason:
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)
    for name in data_files(code):
        (tmp_path / name).write_text(sample_text(name), encoding="utf-8")
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
