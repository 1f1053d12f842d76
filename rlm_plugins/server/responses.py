"""A run's outcome in the OpenAI chat-completions shape: the response object and the stream's chunks.

`finish_reason` is "stop" for a final answer, "tool_calls" when the run paused for the caller's tools, and
"length" when a budget ended the run first (the extension field `rlm.finish_reason` says which one).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from rlm_plugins._version import __version__
from rlm_plugins.core.result import RLMResult
from rlm_plugins.core.steps import Paused
from rlm_plugins.core.tool_turns import ToolTurn, cut_at_stop, structured_value, total_usage, usage_delta
from rlm_plugins.server.errors import APIError

FINGERPRINT = f"rlm-plugins-{__version__}"
_FAILED = ("error", "sandbox_error")


@dataclass
class Reply:
    """What the assistant says: text or tool calls, why it stopped, and the usage of this request."""

    content: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    usage: dict[str, int]
    rlm: dict[str, Any]
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))


def reply_of(turn: ToolTurn, outcome: RLMResult | Paused, stop: list[str]) -> Reply:
    """The reply for an outcome; a run that failed without an answer becomes a 502 `APIError`."""
    by_model = usage_delta(turn)
    total = total_usage(by_model)
    usage = {
        "prompt_tokens": total.input_tokens,
        "completion_tokens": total.output_tokens,
        "total_tokens": total.total_tokens,
    }
    rlm: dict[str, Any] = {
        "run_id": turn.run.run_id,
        "iterations": len(turn.run.history),
        "usage_by_model": {name: u.as_dict() for name, u in by_model.items()},
    }
    if isinstance(outcome, Paused):
        calls = [openai_call(call) for call in outcome.pending]
        return Reply(None, calls, "tool_calls", usage, {**rlm, "finish_reason": "tool_calls"})
    rlm.update(finish_reason=outcome.finish_reason, execution_time=outcome.execution_time)
    if outcome.finish_reason in _FAILED and not outcome.response:
        raise APIError(502, f"the run failed: {outcome.error or outcome.finish_reason}", code=outcome.finish_reason)
    text = cut_at_stop(outcome.response, stop)
    if turn.schema is not None:
        value = structured_value(outcome)
        if value is not None:
            text = json.dumps(value, ensure_ascii=False)
    reason = "stop" if outcome.finish_reason == "final" else "length"
    if outcome.error:
        rlm["error"] = outcome.error
    return Reply(text, None, reason, usage, rlm)


def openai_call(call: dict[str, Any]) -> dict[str, Any]:
    """A recorded external call (`CallLog`) as an OpenAI tool call."""
    arguments = json.dumps(call.get("args") or {}, ensure_ascii=False)
    return {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": arguments}}


def completion(reply: Reply, model: str) -> dict[str, Any]:
    """The non-streaming `chat.completion` object."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    return {
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": reply.usage,
        "rlm": reply.rlm,
    }


def chunk(
    cid: str, created: int, model: str, delta: dict[str, Any] | None, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One `chat.completion.chunk`; `delta=None` makes the usage-only chunk (no choices)."""
    out: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    out.update(extra)
    return out


def reply_chunks(reply: Reply, model: str, include_usage: bool, pieces: int = 64) -> list[dict[str, Any]]:
    """The chunks after the opening role chunk: content (or tool calls), the finish chunk, and usage if asked."""
    out = []
    usage = {"usage": None} if include_usage else {}
    if reply.tool_calls:
        deltas = [{"tool_calls": [{"index": i, **call}]} for i, call in enumerate(reply.tool_calls)]
    else:
        text = reply.content or ""
        deltas = [{"content": text[i : i + pieces]} for i in range(0, len(text), pieces)]
    out.extend(chunk(reply.id, reply.created, model, delta, **usage) for delta in deltas)
    out.append(chunk(reply.id, reply.created, model, {}, reply.finish_reason, rlm=reply.rlm, **usage))
    if include_usage:
        out.append(chunk(reply.id, reply.created, model, None, usage=reply.usage))
    return out
