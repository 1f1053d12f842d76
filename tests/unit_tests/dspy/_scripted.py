"""Scripted DSPy LMs for the DSPy tests: deterministic, stateless where it matters, and thread-safe.

`ScriptedLM(fn)` is a `DummyLM` (so DSPy's managed call path, history and callbacks apply) whose answer is
`fn(messages)`: a dict of output fields (formatted by the ChatAdapter, as DummyLM does) or raw text.
`root(*steps, extract=...)` answers `generate_action` by the iteration number in the prompt, so one LM serves
many concurrent calls without shared state; each step is (reasoning, code) or a callable of the messages.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from dspy.clients.engines.dummy_engine import AsyncDummyEngine, DummyEngine
from dspy.lm15 import Message, Response, TextPart, Usage
from dspy.utils.dummies import DummyLM

Answer = dict[str, Any] | str
_ITERATION = re.compile(r"\[\[ ## iteration ## \]\]\s*(\d+)/")


class _FnEngine(DummyEngine):
    def _complete_messages(self, messages: list[dict[str, Any]]) -> Response:
        owner = self.owner
        with owner.lock:
            owner.calls.append(messages)
        answer = owner.fn(messages)
        text = owner._format_answer_fields(answer) if isinstance(answer, dict) else str(answer)
        usage = Usage(input_tokens=10, output_tokens=5, total_tokens=15)
        return Response(
            id=None, model="dummy", message=Message.assistant([TextPart(text)]), finish_reason="stop", usage=usage
        )


class ScriptedLM(DummyLM):
    """A DummyLM answering `fn(messages)`; `calls` records every request's messages."""

    def __init__(self, fn: Callable[[list[dict[str, Any]]], Answer], model: str = "dummy") -> None:
        super().__init__([])
        self.model = model
        self.fn = fn
        self.calls: list[list[dict[str, Any]]] = []
        self.lock = threading.Lock()
        self._engine_spec = _FnEngine(self)
        self._async_engine_spec = AsyncDummyEngine(self._engine_spec)

    def copy(self, **kwargs: Any) -> ScriptedLM:
        copied = super().copy(**kwargs)
        copied._engine_spec = _FnEngine(copied)
        copied._async_engine_spec = AsyncDummyEngine(copied._engine_spec)
        return copied


def iteration_of(messages: list[dict[str, Any]]) -> int:
    """The 1-based iteration number `generate_action` was called with (0 when absent)."""
    match = _ITERATION.search(messages[-1]["content"])
    return int(match.group(1)) if match else 0


def is_extract(messages: list[dict[str, Any]]) -> bool:
    return "extract the final outputs" in messages[0]["content"]


def root(*steps: tuple[str, str] | Callable[[list[dict[str, Any]]], Answer], extract: Answer | None = None):
    """A root-model script: step i answers iteration i; past the last step it repeats `print('...')`."""

    def answer(messages: list[dict[str, Any]]) -> Answer:
        if is_extract(messages):
            return extract if extract is not None else {"answer": "extracted"}
        index = iteration_of(messages) - 1
        if index >= len(steps) or index < 0:
            return {"reasoning": "keep going", "code": "print('...')"}
        step = steps[index]
        if callable(step):
            return step(messages)
        return {"reasoning": step[0], "code": step[1]}

    return answer


def echo_sub(prefix: str = "sub") -> ScriptedLM:
    """A sub-LM answering `prefix:<the prompt>`."""
    return ScriptedLM(lambda messages: f"{prefix}:{messages[-1]['content']}", model="sub")
