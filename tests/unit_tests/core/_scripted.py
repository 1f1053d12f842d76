"""Scripted root models for session, pause and cancellation tests: replies chosen by a marker in the question."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.engine import Engine
from rlm_plugins.repl.factory import sandbox_factory


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def by_marker(replies: dict[str, list[str]], extract: str = "extracted") -> Callable[[list[dict[str, Any]]], str]:
    """A root model answering turn by turn from `replies[marker]`, the marker being found in the first user message."""
    seen: list[list[dict[str, Any]]] = []

    def complete(messages: list[dict[str, Any]]) -> str:
        seen.append(messages)
        if "no more code will run" in messages[-1]["content"]:
            return extract
        first = next(m["content"] for m in messages if m["role"] == "user")
        script = next(lines for marker, lines in replies.items() if marker in first)
        turn = sum(1 for m in messages if m["role"] == "assistant")
        return script[min(turn, len(script) - 1)]

    complete.seen = seen  # type: ignore[attr-defined]
    return complete


def engine(complete: Callable[..., str], sandbox: Any = "inprocess", sub: Any = None, **kw: Any) -> Engine:
    sub = sub or CallableSubModel(lambda p: f"sub:{p[:20]}", name="sub")
    options = kw.pop("sandbox_options", {})
    return Engine(ChatPolicy(complete, model="root"), sub, sandbox_factory(sandbox, **options), **kw)
