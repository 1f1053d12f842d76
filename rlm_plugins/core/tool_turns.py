"""Runs that pause for external tool calls and resume when the caller sends the results back.

One mechanism for every adapter that speaks chat (ChatRLM, the OpenAI-compatible server):

1. a run gets the REPL functions of `rlm_plugins.core.external_tools`; when its code calls one, the call is
   recorded in a `CallLog` and `pause_hook` stops the run before the root model's next turn;
2. `saved_pause` turns the paused run into store data under `pause_key(first call id)`, with the tool calls
   handed out and a fingerprint of the conversation the caller sent (`rlm_plugins.core.conversation`);
3. the caller answers with tool messages; `continuation(messages)` finds the ids they answer, the store gives
   the data back (atomically, once), `check_conversation` refuses a conversation that is not the paused one,
   and `resume_turn` rebuilds the run with the results in the REPL as `tool_results[call_id]`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rlm_plugins.core.conversation import Message, fingerprint
from rlm_plugins.core.external_tools import CALL_ID_PREFIX, RESULTS_VAR, CallLog
from rlm_plugins.core.ports import Usage
from rlm_plugins.core.result import RLMResult
from rlm_plugins.core.steps import PAUSE, Act, Extract, Operation, Paused
from rlm_plugins.errors import ContinuationMismatchError

if TYPE_CHECKING:
    from rlm_plugins.core.engine import Engine, Run
    from rlm_plugins.repl.base import Sandbox

NO_RESULT = "[no result: the caller sent no tool result for this call]"


@dataclass
class ToolTurn:
    """A run to drive for one call: fresh, or a paused one resumed with this call's tool results."""

    run: Run
    log: CallLog
    usage_base: dict[str, Usage] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    method: str = "function_calling"
    results: dict[str, Any] = field(default_factory=dict)
    new_results: dict[str, Any] = field(default_factory=dict)
    conversation: str | None = None


def ours(call_id: Any) -> bool:
    """Whether a tool-call id is one a paused RLM run handed out."""
    return str(call_id or "").startswith(CALL_ID_PREFIX)


def pause_key(call_id: str) -> str:
    """The store key of the pause that handed out `call_id` (all calls of one pause share it)."""
    return str(call_id).rsplit("_", 1)[0]


def continuation(messages: Sequence[Message]) -> tuple[list[str], list[Message]]:
    """The RLM call ids the trailing tool messages answer, and the conversation before the assistant message
    that made those calls (what the paused run saw); ([], []) when the conversation is not a continuation."""
    end = len(messages)
    while end > 0 and messages[end - 1].get("role") == "tool":
        end -= 1
    ids = [str(m.get("tool_call_id")) for m in messages[end:] if ours(m.get("tool_call_id"))]
    if not ids or end == 0 or messages[end - 1].get("role") != "assistant":
        return ids, list(messages[: max(end - 1, 0)])
    return ids, list(messages[: end - 1])


def check_conversation(data: dict[str, Any], before: Sequence[Message]) -> None:
    """Refuse a continuation whose conversation (up to the tool calls) differs from the one that paused."""
    stored = (data.get("adapter") or {}).get("conversation")
    if stored is not None and stored != fingerprint(before):
        msg = (
            "these tool results answer calls of a paused RLM run, but the conversation before the calls is not "
            "the one that run paused in (messages were added, removed or edited)"
        )
        raise ContinuationMismatchError(msg)


def pause_hook(log: CallLog) -> Any:
    """Pause before the root model's next turn once the run's code has called external tools."""

    def hook(run: Run, op: Operation) -> str | None:
        return PAUSE if isinstance(op, (Act, Extract)) and log.calls else None

    return hook


def resume_turn(
    engine: Engine,
    data: dict[str, Any],
    answers: dict[str, str],
    sandbox: Sandbox | None = None,
) -> tuple[Run, dict[str, Any], dict[str, Any]]:
    """The paused run in `data` rebuilt on `engine`, told the caller's `answers` (call id -> text).

    Returns the run, all tool results so far and this call's new ones. The engine's tools log into a `CallLog`
    made with `made=made_calls(data)`.
    """
    adapter = data.get("adapter") or {}
    run = engine.resume(data, sandbox=sandbox)
    new = {call["id"]: answers.get(call["id"], NO_RESULT) for call in data.get("pending") or []}
    results = {**(adapter.get("results") or {}), **new}
    if run.history:
        lines = [f"- {call_id}: {_short(value)}" for call_id, value in new.items()]
        run.history[-1].notes.append(
            f"The caller ran your tool calls; results (also in `{RESULTS_VAR}` in the REPL):\n" + "\n".join(lines)
        )
    return run, results, new


def made_calls(data: dict[str, Any]) -> int:
    """How many external calls the paused run in `data` has made so far."""
    return int((data.get("adapter") or {}).get("made", 0))


def load_results(turn: ToolTurn) -> None:
    """Put a resumed run's tool results in the REPL as `tool_results` (closing the sandbox if that fails)."""
    sandbox = turn.run.sandbox
    if turn.new_results and sandbox is not None:
        try:
            sandbox.load(RESULTS_VAR, turn.results)
        except BaseException:
            sandbox.close()
            raise


async def aload_results(turn: ToolTurn) -> None:
    """The async twin of `load_results`."""
    sandbox = turn.run.sandbox
    if turn.new_results and sandbox is not None:
        try:
            await sandbox.aload(RESULTS_VAR, turn.results)
        except BaseException:
            await sandbox.aclose()
            raise


def saved_pause(turn: ToolTurn, paused: Paused, ttl: float) -> tuple[str, dict[str, Any]]:
    """The store key and data of a run paused for tool calls (its sandbox stays alive for `ttl` seconds)."""
    paused.pending = turn.log.drain()
    data = paused.to_dict(ttl)
    data["adapter"] = {"results": turn.results, "made": turn.log.made, "conversation": turn.conversation}
    return pause_key(paused.pending[0]["id"]), data


def usage_delta(turn: ToolTurn) -> dict[str, Usage]:
    """Usage by model name spent in this call (a resumed run's earlier calls are not counted again)."""
    out = {}
    for name, usage in turn.run.budget.usage_snapshot().items():
        before = turn.usage_base.get(name, Usage())
        delta = Usage(
            usage.calls - before.calls,
            usage.input_tokens - before.input_tokens,
            usage.output_tokens - before.output_tokens,
            None if usage.cost is None else usage.cost - (before.cost or 0.0),
        )
        if delta.calls or delta.total_tokens:
            out[name] = delta
    return out


def total_usage(by_model: dict[str, Usage]) -> Usage:
    """The sum over models (root and sub calls together)."""
    total = Usage()
    for usage in by_model.values():
        total.add(usage)
    return total


def structured_value(result: RLMResult) -> dict[str, Any] | None:
    """The answer as a JSON object: the FINAL value when it is a dict, else the response parsed as JSON."""
    if isinstance(result.answer, dict):
        return result.answer
    try:
        parsed = json.loads(result.response.strip().removeprefix("```json").strip("`\n "))
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def cut_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """`text` up to the first stop sequence it contains."""
    for word in stop or []:
        if word and word in text:
            text = text[: text.index(word)]
    return text


def _short(value: Any, cap: int = 2_000) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= cap else text[:cap] + f"... [{len(text) - cap:,} more characters in the REPL]"
