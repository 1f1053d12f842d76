"""What `chat(..., stream=True)` and `achat(..., stream=True)` yield: typed events of one conversation turn.

They are the core's run events (`rlm_plugins.core.events`) seen from a chat: `EventTranslator` is an engine
observer that turns each core event of the turn into these (`TurnStarted` becomes `StepStarted`, before each
root-model call), and, once the answer exists, `AnswerChunk`s and `Done`. In one turn they come in this
order: for each step, `StepStarted`, then a `Code` per block the model wrote, then for each block run its
`SubCallSummary`s (while it runs) and its `Output`; then the `AnswerChunk`s (joined, they are the answer) and `Done`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from rlm_plugins.core.events import CodeExecuted, Event, RootStep, SubCall, TurnStarted
from rlm_plugins.core.ports import Usage
from rlm_plugins.core.result import RLMResult

ANSWER_CHUNK_CHARS = 48
"""About how many characters each `AnswerChunk` carries (chunks break after whitespace)."""


@dataclass
class AgentEvent:
    """Base of the agent's events: which conversation turn (from 0) it belongs to."""

    turn: int


@dataclass
class StepStarted(AgentEvent):
    """The root model is being asked for step `iteration` (of at most `max_iterations`)."""

    iteration: int
    max_iterations: int


@dataclass
class Code(AgentEvent):
    """A code block the root model wrote in step `iteration`; it runs next, in order."""

    iteration: int
    code: str


@dataclass
class Output(AgentEvent):
    """What running one block gave: printed output, the error (if any), and whether it ended the turn."""

    iteration: int
    code: str
    stdout: str
    stderr: str
    error: str | None
    final: bool
    duration: float


@dataclass
class SubCallSummary(AgentEvent):
    """One `llm_query` / `rlm_query` call made by the REPL code finished (sizes, not contents)."""

    kind: str
    model: str
    depth: int
    prompt_chars: int
    response_chars: int
    duration: float
    error: str | None = None


@dataclass
class AnswerChunk(AgentEvent):
    """A piece of the answer text; the chunks of a turn, joined, are its answer."""

    text: str


@dataclass
class Done(AgentEvent):
    """The turn ended: the answer, why it ended, and what it cost per model (`usage`) and in total."""

    answer: str
    finish_reason: str
    iterations: int
    usage: dict[str, Usage] = field(default_factory=dict)
    total_usage: Usage = field(default_factory=Usage)


Sink = Callable[[AgentEvent], None]


class EventTranslator:
    """An engine observer that hands the current turn's events, as agent events, to the turn's sink."""

    def __init__(self, max_iterations: int = 0) -> None:
        self.sink: Sink | None = None
        self.turn = 0
        self.max_iterations = max_iterations

    def __call__(self, event: Event) -> None:
        sink = self.sink
        if sink is None:
            return
        for out in self.translate(event):
            sink(out)

    def translate(self, event: Event) -> Iterator[AgentEvent]:
        """The agent events one core event stands for (none for those a chat does not show)."""
        if isinstance(event, SubCall):
            yield SubCallSummary(
                self.turn,
                event.kind,
                event.model,
                event.depth,
                event.prompt_chars,
                event.response_chars,
                event.duration,
                event.error,
            )
        elif event.depth != 0:
            return
        elif isinstance(event, TurnStarted):
            yield StepStarted(self.turn, event.iteration, self.max_iterations)
        elif isinstance(event, RootStep):
            for code in event.action.code:
                if code and code.strip():
                    yield Code(self.turn, event.iteration, code)
        elif isinstance(event, CodeExecuted):
            result = event.result
            yield Output(
                self.turn,
                event.iteration,
                event.code,
                result.stdout,
                result.stderr,
                str(result.error) if result.error is not None else None,
                result.final is not None,
                result.duration,
            )


def closing_events(turn: int, result: RLMResult) -> Iterator[AgentEvent]:
    """The answer as `AnswerChunk`s, then `Done`."""
    for text in answer_chunks(result.response):
        yield AnswerChunk(turn, text)
    yield Done(turn, result.response, result.finish_reason, result.iterations, result.usage, result.total_usage)


def answer_chunks(text: str, size: int = ANSWER_CHUNK_CHARS) -> list[str]:
    """`text` cut after whitespace into pieces of about `size` characters; joined, they are `text`."""
    chunks: list[str] = []
    current = ""
    for word in re.findall(r"\S+\s*|\s+", text):
        if current and len(current) + len(word) > size:
            chunks.append(current)
            current = ""
        current += word
    if current:
        chunks.append(current)
    return chunks
