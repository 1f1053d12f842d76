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
from rlm_plugins.core.engine import Engine, Run
from rlm_plugins.core.ports import Usage
from rlm_plugins.core.result import RLMResult
from rlm_plugins.core.steps import PAUSE, Act, Extract, Operation, Paused
from rlm_plugins.errors import SessionExpiredError
from rlm_plugins.langchain._callbacks import Binding, RunManager
from rlm_plugins.langchain._messages import build_task, message_text
from rlm_plugins.langchain._ports import ChatSubModel, RootModel, model_label
from rlm_plugins.langchain._tools import (
    CALL_ID_PREFIX,
    RESULTS_VAR,
    CallLog,
    final_validator,
    normalize_tool_choice,
    repl_tools,
    schema_instructions,
    tools_instructions,
)
from rlm_plugins.repl.base import Sandbox
from rlm_plugins.repl.factory import sandbox_factory

if TYPE_CHECKING:
    from rlm_plugins.langchain.chat_models import ChatRLM

NO_RESULT = "[no result: the caller sent no ToolMessage for this call]"


@dataclass
class Invocation:
    """A run to drive: a fresh one, or a paused one resumed from its data with this call's tool results."""

    run: Run
    log: CallLog
    binding: Binding
    usage_base: dict[str, Usage] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    method: str = "function_calling"
    results: dict[str, Any] = field(default_factory=dict)
    new_results: dict[str, Any] = field(default_factory=dict)


def resumable_ids(messages: list[BaseMessage]) -> list[str]:
    """The ids of the trailing ToolMessages that answer tool calls ChatRLM handed out."""
    ids: list[str] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        ids.append(message.tool_call_id)
    ids.reverse()
    return [i for i in ids if ours(i)]


def ours(call_id: Any) -> bool:
    """Whether a tool-call id is one ChatRLM handed out for a paused run."""
    return str(call_id or "").startswith(CALL_ID_PREFIX)


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


def pause_key(call_id: str) -> str:
    """The store key of the pause that handed out `call_id` (all calls of one pause share it)."""
    return str(call_id).rsplit("_", 1)[0]


def _engine(model: ChatRLM, kwargs: dict, binding: Binding, log: CallLog) -> tuple[Engine, str, dict | None, str]:
    """The engine for one call (tools and output schema come from the call's bound kwargs), and the instructions
    its question gets."""
    tools = list(kwargs.get("tools") or [])
    names = [tool["function"]["name"] for tool in tools]
    choice = normalize_tool_choice(kwargs.get("tool_choice"), names) if tools else None
    structured = kwargs.get("rlm_structured_output") or {}
    schema, pydantic_cls = structured.get("schema"), structured.get("pydantic")
    active = tools if choice != "none" else []
    instructions = (tools_instructions(active, choice) if active else "") + (
        schema_instructions(schema) if schema is not None else ""
    )
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
        tools={**model.mcp_tools, **repl_tools(active, log)},
        observers=[binding.publish],
        final_validator=final_validator(schema, pydantic_cls, choice, log),
    )
    return engine, instructions, schema, structured.get("method", "function_calling")


def new_invocation(
    model: ChatRLM,
    messages: list[BaseMessage],
    run_manager: RunManager | None,
    kwargs: dict,
    start: Callable[[Engine, str, Any], Run] | None = None,
) -> Invocation:
    """A fresh run for a conversation; `start(engine, query, context)` makes it when given (a thread's turn)."""
    task = build_task(messages, model.context_threshold)
    log, binding = CallLog(), Binding(run_manager)
    engine, instructions, schema, method = _engine(model, kwargs, binding, log)
    query = task.query + instructions
    if start is None:
        run = engine.new_run(query, task.context)
    else:  # a session's turn always loads its input: the long contents, or else the conversation's text
        run = start(engine, query, task.context if task.context is not None else task.query)
    return Invocation(run, log, binding, schema=schema, method=method)


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
    adapter = data.get("adapter") or {}
    log, binding = CallLog(made=int(adapter.get("made", 0))), Binding(run_manager)
    engine, _, schema, method = _engine(model, kwargs, binding, log)
    run = engine.resume(data, sandbox=sandbox)
    answers = {
        m.tool_call_id: ("[tool error] " if m.status == "error" else "") + message_text(m)
        for m in messages
        if isinstance(m, ToolMessage)
    }
    new = {call["id"]: answers.get(call["id"], NO_RESULT) for call in data.get("pending") or []}
    results = {**(adapter.get("results") or {}), **new}
    if run.history:
        lines = [f"- {call_id}: {_short(value)}" for call_id, value in new.items()]
        run.history[-1].notes.append(
            f"The caller ran your tool calls; results (also in `{RESULTS_VAR}` in the REPL):\n" + "\n".join(lines)
        )
    base = run.budget.usage_snapshot()
    return Invocation(run, log, binding, base, schema, method, results, new)


def load_results(inv: Invocation) -> None:
    """Put a resumed run's tool results in the REPL as `tool_results` (closing the sandbox if that fails)."""
    sandbox = inv.run.sandbox
    if inv.new_results and sandbox is not None:
        try:
            sandbox.load(RESULTS_VAR, inv.results)
        except BaseException:
            sandbox.close()
            raise


async def aload_results(inv: Invocation) -> None:
    """The async twin of `load_results`."""
    sandbox = inv.run.sandbox
    if inv.new_results and sandbox is not None:
        try:
            await sandbox.aload(RESULTS_VAR, inv.results)
        except BaseException:
            await sandbox.aclose()
            raise


def _short(value: Any, cap: int = 2_000) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= cap else text[:cap] + f"... [{len(text) - cap:,} more characters in the REPL]"


def pause_hook(log: CallLog) -> Any:
    """Pause before the root model's next turn once the run's code has called external tools."""

    def hook(run: Run, op: Operation) -> str | None:
        return PAUSE if isinstance(op, (Act, Extract)) and log.calls else None

    return hook


def saved_pause(inv: Invocation, paused: Paused, ttl: float) -> tuple[str, dict[str, Any]]:
    """The store key and data of a run paused for tool calls (its sandbox stays alive for `ttl` seconds)."""
    paused.pending = inv.log.drain()
    data = paused.to_dict(ttl)
    data["adapter"] = {"results": inv.results, "made": inv.log.made}
    return pause_key(paused.pending[0]["id"]), data


def to_message(model: ChatRLM, inv: Invocation, outcome: RLMResult | Paused, stop: list[str] | None) -> AIMessage:
    """The AIMessage for an outcome: the answer, or the tool calls of a paused run; usage of this call only."""
    by_model = _usage_delta(inv.run.budget.usage_snapshot(), inv.usage_base)
    total = Usage()
    for usage in by_model.values():
        total.add(usage)
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
    text = _cut_at_stop(outcome.response, stop)
    if inv.schema is not None:
        value = _structured_value(outcome)
        if value is not None and inv.method == "function_calling":
            call = {"name": inv.schema["name"], "args": value, "id": f"{CALL_ID_PREFIX}_out_{outcome.run_id}"}
            return AIMessage("", tool_calls=[call], response_metadata=meta, usage_metadata=usage_metadata)
        if value is not None:
            text = json.dumps(value, ensure_ascii=False)
    return AIMessage(text, response_metadata=meta, usage_metadata=usage_metadata)


def _structured_value(result: RLMResult) -> dict[str, Any] | None:
    value = result.answer if isinstance(result.answer, dict) else None
    if value is None:
        try:
            parsed = json.loads(result.response.strip().removeprefix("```json").strip("`\n "))
        except ValueError:
            return None
        value = parsed if isinstance(parsed, dict) else None
    return value


def _cut_at_stop(text: str, stop: list[str] | None) -> str:
    for word in stop or []:
        if word and word in text:
            text = text[: text.index(word)]
    return text


def _usage_delta(now: dict[str, Usage], base: dict[str, Usage]) -> dict[str, Usage]:
    out = {}
    for name, usage in now.items():
        before = base.get(name, Usage())
        delta = Usage(
            usage.calls - before.calls,
            usage.input_tokens - before.input_tokens,
            usage.output_tokens - before.output_tokens,
            None if usage.cost is None else usage.cost - (before.cost or 0.0),
        )
        if delta.calls or delta.total_tokens:
            out[name] = delta
    return out


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
