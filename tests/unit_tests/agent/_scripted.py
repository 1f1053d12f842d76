"""A scripted root model for agent tests: each user message names a script (`[name]`), whose replies are given
step by step; every request it gets is kept, so tests can measure the root prompts."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rlm_plugins.agent._prompt import LONG_MESSAGE, NEW_MESSAGE, REPLY

MARKER = re.compile(r"\[(\w+)\]")


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def new_message(question: str) -> str:
    """The part of a turn's question that carries the user's new message (quoted, or its preview when long)."""
    long_head = LONG_MESSAGE.split("{", 1)[0]
    start = question.find(NEW_MESSAGE)
    start = question.find(long_head) if start < 0 else start
    end = question.find(REPLY, start)
    return question[start:end]


class ScriptedRoot:
    """`model=` for `RLMAgent`: replies from `scripts[marker]`, by the step of the turn; `requests` keeps each call."""

    def __init__(self, scripts: dict[str, list[str]]) -> None:
        self.scripts = scripts
        self.requests: list[list[dict[str, Any]]] = []

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        self.requests.append(messages)
        if "no more code will run" in messages[-1]["content"]:
            return "extracted"
        first = next(m["content"] for m in messages if m["role"] == "user")
        found = MARKER.search(new_message(first))
        assert found, f"no [script] marker in the new message of: {first[-500:]}"
        script = self.scripts[found.group(1)]
        step = sum(1 for m in messages if m["role"] == "assistant")
        return script[min(step, len(script) - 1)]

    def prompt_sizes(self) -> list[int]:
        """Characters of every request sent, in order."""
        return [sum(len(m["content"]) for m in request) for request in self.requests]


def echo_sub() -> Callable[[str], str]:
    return lambda prompt: f"sub saw {len(prompt)} chars"
