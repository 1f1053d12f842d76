"""A paused run as plain data, and back: `snapshot(run, op, pending)` and `restore(engine, data)`.

The data is JSON-serialisable: the question, the variables' descriptions, the history of steps, what the budget
has spent, the caller's pending calls, and a reference to the sandbox, which stays alive while the run is paused
(it holds the REPL state). Sandboxes that live in this process (`local`, `inprocess`) are held here, so such a run
resumes only in the process that paused it; others are reconnected by id (`e2b`).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rlm_plugins.core import _held
from rlm_plugins.core.budget import Budget, Limits
from rlm_plugins.core.ports import CodeRun, ContextInfo, RunState, Step, Usage
from rlm_plugins.core.steps import Act, Extract, Operation
from rlm_plugins.core.variables import describe_tools
from rlm_plugins.errors import ConfigurationError, SandboxUnavailableError
from rlm_plugins.repl.base import ExecError, ExecResult, FinalAnswer, Sandbox

if TYPE_CHECKING:
    from rlm_plugins.core.engine import Engine, Run

FORMAT = 1
DEFAULT_TTL = 600.0
"""Seconds a paused run's sandbox is kept alive when the caller gives no time-to-live."""


def snapshot(run: Run, op: Operation, pending: list[dict[str, Any]], ttl: float | None = DEFAULT_TTL) -> dict[str, Any]:
    """`run`, paused before `op`, as JSON-serialisable data; its sandbox is kept alive for `ttl` seconds."""
    if not isinstance(op, (Act, Extract)) or run.state is None:
        msg = f"a run paused before {type(op).__name__} cannot be saved; pause before Act or Extract"
        raise ConfigurationError(msg)
    if run.parent is not None:
        raise ConfigurationError("a child run (rlm_query) cannot be saved on its own; pause its root run")
    budget, state = run.budget, run.state
    return {
        "format": FORMAT,
        "run_id": run.run_id,
        "query": run.query,
        "inputs": state.inputs,
        "variables": [asdict(info) for info in state.variables],
        "history": [_step(step) for step in run.history],
        "next": "act" if isinstance(op, Act) else "extract",
        "reason": run.reason,
        "budget": {
            "limits": asdict(budget.limits),
            "llm_calls": budget.llm_calls,
            "usage": {name: asdict(usage) for name, usage in budget.usage_snapshot().items()},
            "elapsed": budget.elapsed(),
        },
        "paused_at": time.time(),
        "pending": pending,
        "sandbox": sandbox_ref(run.sandbox, ttl) if run.sandbox is not None else None,
    }


def sandbox_ref(sandbox: Sandbox, ttl: float | None) -> dict[str, Any]:
    """Where a paused run's sandbox is: reconnectable details (E2B) or a token held in this process."""
    if getattr(sandbox, "kind", None) == "e2b":
        from rlm_plugins.repl._e2b_attach import detach

        return {"kind": "e2b", "remote": detach(sandbox, ttl)}  # type: ignore[arg-type]
    return {"kind": getattr(sandbox, "kind", "custom"), "process": _held.PROCESS, "token": _held.hold(sandbox, ttl)}


def restore(engine: Engine, data: dict[str, Any], sandbox: Sandbox | None = None) -> Run:
    """The run `data` describes, with its sandbox reconnected (or `sandbox`, when the caller has it)."""
    from rlm_plugins.core.engine import Run

    if data.get("format") != FORMAT:
        raise ConfigurationError(f"paused-run data of format {data.get('format')!r}; this version reads {FORMAT}")
    ref = data.get("sandbox")
    if sandbox is None and ref is not None:
        sandbox = reconnect(ref)
    spent = data["budget"]
    budget = Budget(Limits(**spent["limits"]))
    budget.llm_calls = spent["llm_calls"]
    budget.usage = {name: Usage(**usage) for name, usage in spent["usage"].items()}
    budget.started = time.monotonic() - spent["elapsed"] - max(0.0, time.time() - data["paused_at"])
    run = Run(engine, budget, data["query"], None, data["inputs"], loads=[], sandbox=sandbox)
    run.owns_sandbox = True
    run.run_id = data["run_id"]
    run.history.extend(_restore_step(step) for step in data["history"])
    run.reason = data["reason"]
    run.state = RunState(
        query=run.query,
        variables=[ContextInfo(**info) for info in data["variables"]],
        tools=describe_tools(engine.tools),
        history=run.history,
        iteration=len(run.history),
        max_iterations=budget.limits.max_iterations,
        depth=0,
        max_depth=budget.limits.max_depth,
        max_output_chars=engine.max_output_chars,
        final_fields=run.final_fields,
        inputs=dict(data["inputs"]),
    )
    return run


def reconnect(ref: dict[str, Any]) -> Sandbox:
    """The sandbox a paused run's data points at (an E2B one reconnects with the key in `E2B_API_KEY`)."""
    if "remote" in ref:
        from rlm_plugins.repl._e2b_attach import attach

        return attach(ref["remote"])
    if ref.get("process") != _held.PROCESS:
        msg = (
            f"this paused run's {ref.get('kind')!r} sandbox lives in process {ref.get('process')} (host:pid), "
            f"not in this one ({_held.PROCESS}): a local sandbox cannot move between processes. Resume the run "
            "where it paused, or use sandbox='e2b', whose sandboxes reconnect by id from anywhere"
        )
        raise SandboxUnavailableError(msg)
    sandbox = _held.take(ref["token"])
    if sandbox is None:
        msg = "this paused run's sandbox is gone (its time-to-live ended, or the run was already resumed)"
        raise SandboxUnavailableError(msg)
    return sandbox


def discard(data: dict[str, Any]) -> None:
    """Release the sandbox of a paused run that will never resume (held here, or remote)."""
    ref = data.get("sandbox") or {}
    if ref.get("process") == _held.PROCESS:
        _held.release(ref["token"])


def _step(step: Step) -> dict[str, Any]:
    out = asdict(step)
    for run in out["runs"]:
        run["result"].pop("tool_calls", None)
    return out


def _restore_step(data: dict[str, Any]) -> Step:
    runs = []
    for item in data["runs"]:
        result = dict(item["result"])
        result["error"] = ExecError(**result["error"]) if result.get("error") else None
        result["final"] = FinalAnswer(**result["final"]) if result.get("final") else None
        runs.append(CodeRun(item["code"], ExecResult(**result)))
    return Step(data["iteration"], data["reasoning"], data["response"], runs, list(data["notes"]), data["duration"])
