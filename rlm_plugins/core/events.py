"""Typed events of a run. Everything that observes a run (trajectory, JSONL log, console, framework callbacks)
is a consumer of this stream."""

from __future__ import annotations

import logging
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlm_plugins.core.ports import Action, ContextInfo, Usage
from rlm_plugins.repl._values import safe_str
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
class TurnStarted(Event):
    """A root-model turn begins (before the model is asked)."""

    iteration: int


@dataclass
class TurnFinished(Event):
    """A turn's reply was acted on (its code ran); `duration` covers the model call and the code."""

    iteration: int
    duration: float


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
    """Deliver an event to every observer; an observer that fails never breaks the run, and is reported.

    The first failure of each observer is a `RuntimeWarning` naming it and the error (and every failure is logged
    on the `rlm_plugins` logger), so a broken log or callback never silently loses the audit trail.
    """
    for observer in observers:
        try:
            observer(event)
        except Exception as exc:  # an observer's bug must not lose the run
            _report(observer, exc)


_warned: weakref.WeakSet[Any] = weakref.WeakSet()
_warned_ids: set[int] = set()
_warned_lock = threading.Lock()


def _report(observer: Observer, exc: Exception) -> None:
    logging.getLogger("rlm_plugins").error("event observer %r failed", observer, exc_info=exc)
    key = getattr(observer, "__self__", observer)  # a bound method: its object, which lives as long as it does
    with _warned_lock:
        try:
            if key in _warned:
                return
            _warned.add(key)
        except TypeError:  # not weak-referenceable
            if id(key) in _warned_ids:
                return
            _warned_ids.add(id(key))
    warnings.warn(
        f"the run observer {safe_str(observer)} failed ({type(exc).__name__}: {safe_str(exc)}); its events are lost. "
        "Fix the observer; further failures of it are only logged (logger 'rlm_plugins')",
        RuntimeWarning,
        stacklevel=3,
    )
