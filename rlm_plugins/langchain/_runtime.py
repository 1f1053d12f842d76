"""One ChatRLM invocation: build the engine run for a conversation (or resume a paused one), then turn its outcome
into an `AIMessage`. Everything here is shared by the sync and async paths; only performing operations differs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from rlm_plugins.core.budget import Limits
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.conversation import fingerprint
from rlm_plugins.core.engine import Engine, Run
from rlm_plugins.core.external_tools import CALL_ID_PREFIX, CallLog, tool_setup
from rlm_plugins.core.result import RLMResult
from rlm_plugins.core.snapshot import discard
from rlm_plugins.core.steps import Paused
from rlm_plugins.core.tool_turns import (
    ToolTurn,
    aload_results,
    check_conversation,
    continuation,
    cut_at_stop,
    load_results,
    made_calls,
    ours,
    pause_hook,
    pause_key,
    resume_turn,
    saved_pause,
    structured_value,
    total_usage,
    usage_delta,
)
from rlm_plugins.errors import ContinuationMismatchError, SessionExpiredError
from rlm_plugins.langchain._callbacks import Binding, RunManager
from rlm_plugins.langchain._messages import as_dict, message_text, task_of
from rlm_plugins.langchain._ports import ChatSubModel, RootModel, model_label
from rlm_plugins.repl.base import Sandbox
from rlm_plugins.repl.factory import sandbox_factory

if TYPE_CHECKING:
    from rlm_plugins.langchain.chat_models import ChatRLM

__all__ = [
    "Invocation",
    "aload_results",
    "load_results",
    "new_invocation",
    "pause_hook",
    "pause_key",
    "paused_data",
    "resumable_ids",
    "resumed_invocation",
    "saved_pause",
    "to_message",
    "uncached_calls",
]


@dataclass
class Invocation(ToolTurn):
    """A core `ToolTurn` plus the LangChain callback binding its model calls report to."""

    binding: Binding = field(default_factory=lambda: Binding(None))


def resumable_ids(messages: list[BaseMessage]) -> list[str]:
    """The ids of the trailing ToolMessages that answer tool calls ChatRLM handed out."""
    return continuation([as_dict(m) for m in messages])[0]


def paused_data(model: ChatRLM, data: dict[str, Any] | None, ids: list[str]) -> dict[str, Any]:
    """The stored data of the paused run these ToolMessages answer, or a `SessionExpiredError` saying why not."""
    if data is None:
        msg = (
            f"no paused RLM session holds the tool calls {ids}: it expired (session_ttl={model.session_ttl:g}s), "
            f"was evicted (max_sessions={model.max_sessions}), or was already resumed. Send the question again "
            "without these ToolMessages, or raise session_ttl / max_sessions on ChatRLM"
        )
        raise SessionExpiredError(msg)
    return data


def _engine(model: ChatRLM, kwargs: dict, binding: Binding, log: CallLog) -> tuple[Engine, str, dict | None, str]:
    """The engine for one call (tools and output schema come from the call's bound kwargs), and the instructions
    its question gets."""
    structured = kwargs.get("rlm_structured_output") or {}
    schema = structured.get("schema")
    setup = tool_setup(kwargs.get("tools"), kwargs.get("tool_choice"), schema, log, structured.get("pydantic"))
    root_port = RootModel(model.root_model, binding)
    engine = Engine(
        ChatPolicy(root_port.complete, root_port.acomplete, model=root_port.label),
        ChatSubModel(model.sub_model, binding),
        sandbox_factory(model.sandbox, **model.sandbox_options),
        limits=Limits(
            max_iterations=model.max_iterations,
            max_llm_calls=model.max_llm_calls,
            max_depth=model.max_depth,
            max_time=model.max_time,
        ),
        max_output_chars=model.max_output_chars,
        max_concurrency=model.max_concurrency,
        tools={**model.mcp_tools, **setup.tools},
        observers=[binding.publish],
        final_validator=setup.validator,
    )
    return engine, setup.instructions, schema, structured.get("method", "function_calling")


def new_invocation(
    model: ChatRLM,
    messages: list[BaseMessage],
    run_manager: RunManager | None,
    kwargs: dict,
    start: Callable[[Engine, str, Any], Run] | None = None,
) -> Invocation:
    """A fresh run for a conversation; `start(engine, query, context)` makes it when given (a thread's turn)."""
    task = task_of(messages, model.context_threshold)
    log, binding = CallLog(), Binding(run_manager)
    engine, instructions, schema, method = _engine(model, kwargs, binding, log)
    query = task.query + instructions
    if start is None:
        run = engine.new_run(query, task.context)
    else:  # a session's turn always loads its input: the long contents, or else the conversation's text
        run = start(engine, query, task.context if task.context is not None else task.query)
    conversation = fingerprint([as_dict(m) for m in messages])
    return Invocation(run, log, schema=schema, method=method, conversation=conversation, binding=binding)


def resumed_invocation(
    model: ChatRLM,
    data: dict[str, Any],
    messages: list[BaseMessage],
    run_manager: RunManager | None,
    kwargs: dict,
    sandbox: Sandbox | None = None,
) -> Invocation:
    """A paused run rebuilt from its stored data and bound to this call, with the caller's tool results (`sandbox`:
    its sandbox, when the caller has reconnected it already)."""
    dicts = [as_dict(m) for m in messages]
    try:
        check_conversation(data, continuation(dicts)[1])
    except ContinuationMismatchError as exc:
        if sandbox is not None:
            sandbox.close()
        else:
            discard(data)
        msg = (
            f"{exc}: the paused run was closed. Send the conversation exactly as it was with the ToolMessages, "
            "or ask again without them"
        )
        raise ContinuationMismatchError(msg) from None
    log, binding = CallLog(made=made_calls(data)), Binding(run_manager)
    engine, _, schema, method = _engine(model, kwargs, binding, log)
    answers = {
        m.tool_call_id: ("[tool error] " if m.status == "error" else "") + message_text(m)
        for m in messages
        if isinstance(m, ToolMessage)
    }
    run, results, new = resume_turn(engine, data, answers, sandbox)
    base = run.budget.usage_snapshot()
    return Invocation(run, log, base, schema, method, results, new, fingerprint(dicts), binding)


def to_message(model: ChatRLM, inv: Invocation, outcome: RLMResult | Paused, stop: list[str] | None) -> AIMessage:
    """The AIMessage for an outcome: the answer, or the tool calls of a paused run; usage of this call only."""
    by_model = usage_delta(inv)
    total = total_usage(by_model)
    meta: dict[str, Any] = {
        "model_name": model_label(model.root_model),
        "model_provider": "rlm",
        "usage_by_model": {name: usage.as_dict() for name, usage in by_model.items()},
    }
    usage_metadata = {
        "input_tokens": total.input_tokens,
        "output_tokens": total.output_tokens,
        "total_tokens": total.total_tokens,
    }
    if isinstance(outcome, Paused):
        meta["finish_reason"] = "tool_calls"
        meta["rlm"] = {"run_id": inv.run.run_id, "paused": True, "iterations": len(inv.run.history)}
        return AIMessage("", tool_calls=outcome.pending, response_metadata=meta, usage_metadata=usage_metadata)
    meta["finish_reason"] = "stop" if outcome.finish_reason == "final" else outcome.finish_reason
    meta["rlm"] = {
        "run_id": outcome.run_id,
        "finish_reason": outcome.finish_reason,
        "iterations": outcome.iterations,
        "error": outcome.error,
        "execution_time": outcome.execution_time,
    }
    text = cut_at_stop(outcome.response, stop)
    if inv.schema is not None:
        value = structured_value(outcome)
        if value is not None and inv.method == "function_calling":
            call = {"name": inv.schema["name"], "args": value, "id": f"{CALL_ID_PREFIX}_out_{outcome.run_id}"}
            return AIMessage("", tool_calls=[call], response_metadata=meta, usage_metadata=usage_metadata)
        if value is not None:
            text = json.dumps(value, ensure_ascii=False)
    return AIMessage(text, response_metadata=meta, usage_metadata=usage_metadata)


def uncached_calls(message: BaseMessage) -> BaseMessage:
    """`message` with every ChatRLM tool-call id replaced by a fresh one outside ChatRLM's id space."""
    calls = getattr(message, "tool_calls", None) or []
    if not any(ours(call.get("id")) for call in calls):
        return message
    fresh = [
        {**call, "id": f"call_cached_{uuid.uuid4().hex}"}
        if str(call.get("id", "")).startswith(CALL_ID_PREFIX)
        else call
        for call in calls
    ]
    return message.model_copy(update={"tool_calls": fresh})
