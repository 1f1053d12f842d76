"""The two drivers of a run's step generator: `drive` (sync) and `adrive` (async).

They only perform the operations of `rlm_plugins.core.steps`, so the loop is written once (in `Run.steps`).
Neither wraps the other: a sync run works inside a running event loop and an async run never blocks one.

Both take an optional pause hook (see `PauseHook`). Both end a run that is interrupted — `run.cancel()` from
another thread, task cancellation, KeyboardInterrupt — by cancelling its sandbox and its child runs; an
interrupting exception is re-raised after that cleanup, with the result so far in `run.result`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlm_plugins.core.result import RLMResult
from rlm_plugins.core.steps import PAUSE, Act, Exec, Operation, Paused, PauseHook, Start

if TYPE_CHECKING:
    from rlm_plugins.core.engine import Run


def drive(run: Run, pause: PauseHook | None = None) -> RLMResult | Paused:
    """Drive `run` until it ends (its `RLMResult`) or `pause` stops it (a `Paused`)."""
    try:
        while True:
            op, resumed = run.next_operation()
            if op is None:
                run.finish()
                return run.result  # type: ignore[return-value]
            if pause is not None and not resumed and pause(run, op) == PAUSE:
                return run.pause_at(op)
            try:
                run.reply(perform(run, op))
            except Exception as exc:
                run.reply(error=exc)
    except BaseException:
        run.abort()
        raise


async def adrive(run: Run, pause: PauseHook | None = None) -> RLMResult | Paused:
    """The async twin of `drive`; task cancellation ends the run and then re-raises `CancelledError`."""
    try:
        while True:
            op, resumed = run.next_operation()
            if op is None:
                await run.afinish()
                return run.result  # type: ignore[return-value]
            if pause is not None and not resumed and pause(run, op) == PAUSE:
                return run.pause_at(op)
            try:
                run.reply(await aperform(run, op))
            except Exception as exc:
                run.reply(error=exc)
    except BaseException:
        await run.aabort()
        raise


def perform(run: Run, op: Operation) -> Any:
    """Perform one operation synchronously."""
    policy = run.engine.policy
    if isinstance(op, Start):
        sandbox = run.open_sandbox()
        infos = [sandbox.load(name, value) for name, value in op.loads]  # a load starts the sandbox as it stages
        sandbox.start()
        if op.aliases:
            sandbox.execute(_alias_code(op.aliases))
        return infos
    if isinstance(op, Act):
        return policy.act(op.state)
    if isinstance(op, Exec):
        return run.sandbox.execute(op.code, tools=run.tools(sync=True), timeout=op.timeout)  # type: ignore[union-attr]
    return policy.extract(op.state)


async def aperform(run: Run, op: Operation) -> Any:
    """Perform one operation without blocking the event loop."""
    policy = run.engine.policy
    if isinstance(op, Start):
        sandbox = run.open_sandbox()
        infos = [await sandbox.aload(name, value) for name, value in op.loads]
        await sandbox.astart()
        if op.aliases:
            await sandbox.aexecute(_alias_code(op.aliases))
        return infos
    if isinstance(op, Act):
        return await policy.aact(op.state)
    if isinstance(op, Exec):
        sandbox = run.sandbox
        return await sandbox.aexecute(op.code, tools=run.tools(sync=False), timeout=op.timeout)  # type: ignore[union-attr]
    return await policy.aextract(op.state)


def _alias_code(aliases: tuple[tuple[str, str], ...]) -> str:
    return "\n".join(f"{alias} = {target}" for alias, target in aliases)
