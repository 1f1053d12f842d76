"""The engine's ports: the root model (Policy) and what `llm_query` calls (SubModel), plus the run state they see.

The third port, Sandbox, lives in `rlm_plugins.repl.base`. Frameworks plug in by implementing one of these
protocols; nothing here imports a framework.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rlm_plugins.repl.base import ExecResult


@dataclass
class Usage:
    """Tokens and cost of model calls, summed; cost is None while no provider has reported one.

    `input_tokens` counts every prompt token, `cached_input_tokens` the part a provider served from its prompt
    cache; `memo_hits` counts sub-calls answered from the memo without a model call (they add no calls), and
    `compactions` the root requests whose history had to be compacted anew to stay under its budget.
    """

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    cached_input_tokens: int = 0
    memo_hits: int = 0
    compactions: int = 0

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.memo_hits += other.memo_hits
        self.compactions += other.compactions
        if other.cost is not None:
            self.cost = (self.cost or 0.0) + other.cost

    def copy(self) -> Usage:
        """An independent copy."""
        return dataclasses.replace(self)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cost": self.cost,
            "cached_input_tokens": self.cached_input_tokens,
            "memo_hits": self.memo_hits,
            "compactions": self.compactions,
        }


@dataclass
class Completion:
    """A model's text plus what it cost. Ports may return a bare str when they know no usage."""

    text: str
    usage: Usage | None = None
    model: str | None = None


@dataclass
class ContextInfo:
    """What the root model is told about a REPL variable instead of its content."""

    name: str
    type: str
    length: int
    chunk_lengths: list[int] | None = None
    preview: str = ""


@dataclass
class CodeRun:
    """One code block of a step and what running it gave."""

    code: str
    result: ExecResult


@dataclass
class Step:
    """One root-model turn: what it said, the code it ran, and notes the engine gave back."""

    iteration: int
    reasoning: str
    response: str
    runs: list[CodeRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration: float = 0.0


@dataclass
class ToolSpec:
    """A function the REPL offers, as the root model's prompt describes it."""

    name: str
    signature: str
    doc: str


@dataclass
class RunState:
    """Everything a Policy may look at to choose its next action."""

    query: str
    variables: list[ContextInfo]
    tools: list[ToolSpec]
    history: list[Step]
    iteration: int
    max_iterations: int
    depth: int = 0
    max_depth: int = 1
    max_output_chars: int = 10_000
    final_fields: list[str] | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    """Small input values (DSPy input fields) that a policy may put in its prompt directly."""


@dataclass
class Action:
    """The root model's next move: code blocks to run in order, or a final answer given in text."""

    reasoning: str = ""
    code: list[str] = field(default_factory=list)
    final: Any = None
    has_final: bool = False
    notes: list[str] = field(default_factory=list)
    """Feedback for the model about its reply (empty reply, a non-Python fence, ...)."""
    response: str = ""
    usage: Usage | None = None
    model: str | None = None
    prompt: Any = None
    """What the model was sent (e.g. the chat messages), for logs; None when the policy does not expose it."""


@runtime_checkable
class Policy(Protocol):
    """The root model: picks the next action from the run state, and extracts an answer when the budget ends."""

    def act(self, state: RunState) -> Action: ...
    async def aact(self, state: RunState) -> Action: ...
    def extract(self, state: RunState) -> Completion | str: ...
    async def aextract(self, state: RunState) -> Completion | str: ...


@runtime_checkable
class SubModel(Protocol):
    """What `llm_query` calls: one prompt in, one text out; `name` keys the per-model usage."""

    name: str

    def query(self, prompt: str) -> Completion | str: ...
    async def aquery(self, prompt: str) -> Completion | str: ...


def as_completion(value: Completion | str | None, model: str | None = None) -> Completion:
    """Normalise a port's return value."""
    if isinstance(value, Completion):
        return value
    return Completion("" if value is None else str(value), None, model)
