"""Official-style clients (`model_name`, `completion`, `get_last_usage`) scripted for the `rlms` compat tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import rlm_plugins.standalone.rlm as rlm_module
from rlm_plugins.core.result import ModelUsageSummary


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def answer(content: str) -> str:
    """A reply submitting `content` with the official 0.1.3 answer dict."""
    return repl(f"answer['content'] = {content!r}\nanswer['ready'] = True")


class ScriptedClient:
    """Replies from a list in order (the last one repeats), or from `reply(prompt)`; records every prompt."""

    def __init__(
        self,
        model_name: str,
        replies: list[str] | Callable[[Any], str],
        tokens: tuple[int, int] = (10, 5),
        cost: float | None = None,
    ) -> None:
        self.model_name = model_name
        self.replies = replies
        self.prompts: list[Any] = []
        self.tokens = tokens
        self.cost = cost

    def completion(self, prompt: Any) -> str:
        self.prompts.append(prompt)
        if callable(self.replies):
            return self.replies(prompt)
        return self.replies[min(len(self.prompts) - 1, len(self.replies) - 1)]

    def get_last_usage(self) -> ModelUsageSummary:
        return ModelUsageSummary(1, self.tokens[0], self.tokens[1], self.cost)

    def system(self, call: int = 0) -> str:
        """The system message of root call `call`."""
        return self.prompts[call][0]["content"]

    def first_user(self, call: int = 0) -> str:
        return next(m["content"] for m in self.prompts[call] if m["role"] == "user")


class Clients:
    """Stands in for `get_client`: one `ScriptedClient` per model name, and the (backend, kwargs) of each call."""

    def __init__(self) -> None:
        self.by_name: dict[str, ScriptedClient] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def add(self, name: str, replies: list[str] | Callable[[Any], str], **kw: Any) -> ScriptedClient:
        self.by_name[name] = ScriptedClient(name, replies, **kw)
        return self.by_name[name]

    def __call__(self, backend: str, backend_kwargs: dict[str, Any] | None = None) -> ScriptedClient:
        kwargs = dict(backend_kwargs or {})
        self.calls.append((backend, kwargs))
        return self.by_name[kwargs["model_name"]]


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Clients:
    """`get_client` of `RLM(backend=...)` replaced by scripted clients."""
    fake = Clients()
    monkeypatch.setattr(rlm_module, "get_client", fake)
    return fake


OFFICIAL = {"backend": "openai", "environment": "ipython"}
"""The official call shape, on the in-process REPL (fast); add backend_kwargs={"model_name": ...}."""
