"""Driving an engine run that may pause for external tool calls, synchronously or asynchronously.

The loop itself is the engine's step generator (`Run.steps`); these two drivers only perform its operations
(`Run.perform` / `Run.aperform`), like `Run.run_sync` / `Run.run_async`, with one difference: when the run's
code has called external tools, they stop before the root model's next turn and hand back a `Paused` with the
generator still suspended, and the sandbox open, so the run can resume later from either driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlm_plugins.core.engine import Run
from rlm_plugins.core.result import RLMResult
from rlm_plugins.langchain._tools import CallLog

_PAUSE_BEFORE = ("act", "extract")


@dataclass
class Paused:
    """A run stopped before its next root turn because its code called external tools."""

    flow: Any
    op: Any
    calls: list[dict[str, Any]]


def drive(run: Run, flow: Any, log: CallLog, op: Any = None) -> RLMResult | Paused:
    """Run `flow` until it ends or pauses; `op` is an operation to perform first (a resumed turn)."""
    value, error = None, None
    try:
        while True:
            if op is not None:
                try:
                    value = run.perform(op)
                except Exception as exc:
                    error = exc
            try:
                op = flow.throw(error) if error is not None else flow.send(value)
            except StopIteration as stop:
                _close(run)
                return stop.value
            value, error = None, None
            if op.kind in _PAUSE_BEFORE and log.calls:
                return Paused(flow, op, log.drain())
    except BaseException:
        _close(run)
        raise


async def adrive(run: Run, flow: Any, log: CallLog, op: Any = None) -> RLMResult | Paused:
    """The async twin of `drive`; it never blocks the event loop."""
    value, error = None, None
    try:
        while True:
            if op is not None:
                try:
                    value = await run.aperform(op)
                except Exception as exc:
                    error = exc
            try:
                op = flow.throw(error) if error is not None else flow.send(value)
            except StopIteration as stop:
                await _aclose(run)
                return stop.value
            value, error = None, None
            if op.kind in _PAUSE_BEFORE and log.calls:
                return Paused(flow, op, log.drain())
    except BaseException:
        await _aclose(run)
        raise


def _close(run: Run) -> None:
    run.subcalls.stop_children()
    if run.sandbox is not None:
        run.sandbox.close()


async def _aclose(run: Run) -> None:
    await run.subcalls.astop_children()
    if run.sandbox is not None:
        await run.sandbox.aclose()
