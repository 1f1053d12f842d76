"""How an RLM run reports to LangChain: child runs for inner model calls, custom events for trajectory steps.

Inner model calls (the root's turns and every `llm_query`) run as children of the ChatRLM run that carry only
the tracer handlers (LangSmith, run collectors), so traces nest while a plain handler passed to the outer call
sees exactly one chat-model start. The run manager is passed explicitly to every call, so parenting holds on
the worker threads and event-loop tasks the engine uses, where context variables do not follow.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import asdict, is_dataclass
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
    adispatch_custom_event,
    dispatch_custom_event,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tracers.base import BaseTracer

from rlm_plugins.core.events import (
    CodeExecuted,
    Event,
    FinalReached,
    RootStep,
    RunFinished,
    RunStarted,
    SubCall,
    TurnFinished,
    TurnStarted,
)
from rlm_plugins.langchain._lc_private import StreamingCallbackHandler
from rlm_plugins.langchain._progress import graph_writer, progress_item

RunManager = CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun
EVENT_NAMES = {
    RunStarted: "rlm_run_started",
    TurnStarted: "rlm_turn_started",
    RootStep: "rlm_root_step",
    CodeExecuted: "rlm_code_executed",
    SubCall: "rlm_sub_call",
    TurnFinished: "rlm_turn_finished",
    FinalReached: "rlm_final",
    RunFinished: "rlm_run_finished",
}
_TEXT_CAP = 4_000


def tracers(handlers: list[Any]) -> list[Any]:
    """The handlers that record runs (LangSmith, run collectors); never plain handlers or stream consumers
    (astream_events, astream_log), which would otherwise show the root's code as the model's output."""
    return [h for h in handlers if isinstance(h, BaseTracer) and not isinstance(h, StreamingCallbackHandler)]


class Binding:
    """The outer ChatRLM run that inner calls and events belong to; a resumed session is bound anew."""

    def __init__(self, run_manager: RunManager | None) -> None:
        self.run_manager = run_manager
        self.loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Future] = []
        self._lock = threading.Lock()
        self._configs: dict[str, RunnableConfig] = {}
        if isinstance(run_manager, AsyncCallbackManagerForLLMRun):
            self.loop = asyncio.get_running_loop()
        self.has_tracers = bool(run_manager is not None and tracers(run_manager.inheritable_handlers))
        self.writer = graph_writer()

    def rebind(self, run_manager: RunManager | None) -> None:
        """Report to a new outer run (a paused session resumed by a later call)."""
        self.__init__(run_manager)  # type: ignore[misc]

    def child_config(self, tag: str) -> RunnableConfig:
        """The config of an inner call: a child of this run with the tracer handlers only."""
        config = self._configs.get(tag)
        if config is None:
            config = self._configs[tag] = self._child_config(tag)
        return config

    def _child_config(self, tag: str) -> RunnableConfig:
        rm = self.run_manager
        if rm is None:
            return {"callbacks": [], "tags": [tag]}
        handlers = tracers(rm.inheritable_handlers)
        cls = AsyncCallbackManager if self.loop is not None else CallbackManager
        manager = cls(
            handlers=handlers,
            inheritable_handlers=list(handlers),
            parent_run_id=rm.run_id,
            tags=list(rm.inheritable_tags),
            inheritable_tags=list(rm.inheritable_tags),
            metadata=dict(rm.inheritable_metadata),
            inheritable_metadata=dict(rm.inheritable_metadata),
        )
        manager.add_tags([tag], inherit=False)
        return {"callbacks": manager}

    def _event_config(self) -> RunnableConfig | None:
        rm = self.run_manager
        if rm is None or not rm.handlers:
            return None
        cls = AsyncCallbackManager if self.loop is not None else CallbackManager
        manager = cls(
            handlers=list(rm.handlers),
            inheritable_handlers=list(rm.inheritable_handlers),
            parent_run_id=rm.run_id,
            tags=list(rm.tags),
            metadata=dict(rm.metadata),
        )
        return {"callbacks": manager}

    def publish(self, event: Event) -> None:
        """An engine observer: each event becomes a custom event of the ChatRLM run (and a LangGraph custom item)."""
        name, data = EVENT_NAMES.get(type(event), "rlm_event"), event_data(event)
        if self.writer is not None:
            self.writer(progress_item(name, data))
        config = self._event_config()
        if config is None:
            return
        loop = self.loop
        if loop is None:
            dispatch_custom_event(name, data, config=config)
            return
        coro = adispatch_custom_event(name, data, config=config)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task: asyncio.Future = loop.create_task(coro)
        else:
            task = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop), loop=loop)
        with self._lock:
            self._tasks.append(task)

    async def flush(self) -> None:
        """Wait until every custom event published on the event loop has been delivered."""
        while True:
            with self._lock:
                tasks, self._tasks = self._tasks, []
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)


def event_data(event: Event) -> dict[str, Any]:
    """A small, JSON-friendly view of an engine event (never the long context)."""
    base: dict[str, Any] = {"run_id": event.run_id, "depth": event.depth, "time": event.time}
    if isinstance(event, RunStarted):
        variables = [{"name": v.name, "type": v.type, "length": v.length} for v in event.variables]
        return {**base, "query": _cap(event.query), "variables": variables, "sandbox": event.sandbox}
    if isinstance(event, RootStep):
        action = event.action
        usage = asdict(action.usage) if action.usage is not None else None
        return {
            **base,
            "iteration": event.iteration,
            "reasoning": _cap(action.reasoning),
            "code": list(action.code),
            "final": action.has_final,
            "duration": event.duration,
            "usage": usage,
        }
    if isinstance(event, CodeExecuted):
        result = event.result
        error = str(result.error) if result.error is not None else None
        return {
            **base,
            "iteration": event.iteration,
            "code": event.code,
            "stdout": _cap(result.stdout),
            "stderr": _cap(result.stderr),
            "error": error,
            "final": result.final is not None,
        }
    if isinstance(event, SubCall):
        return {
            **base,
            "kind": event.kind,
            "model": event.model,
            "prompt_chars": event.prompt_chars,
            "response_chars": event.response_chars,
            "duration": event.duration,
            "error": event.error,
            "prompt": _cap(event.prompt),
            "response": _cap(event.response),
        }
    if isinstance(event, FinalReached):
        return {**base, "iteration": event.iteration, "answer": _cap(str(event.answer))}
    if isinstance(event, RunFinished):
        result = event.result
        return {
            **base,
            "finish_reason": result.finish_reason,
            "iterations": result.iterations,
            "usage": {name: usage.as_dict() for name, usage in result.usage.items()},
        }
    return {**base, **(asdict(event) if is_dataclass(event) else {})}


def _cap(text: str) -> str:
    return text if len(text) <= _TEXT_CAP else text[:_TEXT_CAP] + f"... [{len(text) - _TEXT_CAP:,} more characters]"
