"""Typed events of a run. Everything that observes a run (trajectory, JSONL log, console, framework callbacks)
is a consumer of this stream."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlm_plugins.core.ports import Action, ContextInfo, Usage
from rlm_plugins.repl.base import ExecResult


@dataclass
class Event:
    """Base of all events: which run (id, depth) and when."""

    run_id: str
    depth: int
    time: float = field(default_factory=time.time, kw_only=True)


@dataclass
class RunStarted(Event):
    query: str
    variables: list[ContextInfo]
    parent_id: str | None = None
    sandbox: str = ""
    isolation: str = ""


@dataclass
class RootStep(Event):
    """The root model answered; `messages` is what it was sent when the policy exposes it."""

    iteration: int
    action: Action
    duration: float
    messages: Any = None


@dataclass
class CodeExecuted(Event):
    iteration: int
    code: str
    result: ExecResult


@dataclass
class SubCall(Event):
    """One llm_query slot or one rlm_query child finished."""

    kind: str
    model: str
    prompt_chars: int
    response_chars: int
    duration: float
    usage: Usage | None = None
    error: str | None = None
    prompt: str = ""
    response: str = ""


@dataclass
class FinalReached(Event):
    iteration: int
    answer: Any
    finish_reason: str


@dataclass
class RunFinished(Event):
    result: Any


Observer = Callable[[Event], None]


def emit(observers: list[Observer], event: Event) -> None:
    """Deliver an event to every observer; an observer that fails never breaks the run."""
    for observer in observers:
        try:
            observer(event)
        except Exception:  # an observer's bug must not lose the run
            import logging

            logging.getLogger("rlm_plugins").exception("event observer %r failed", observer)
