"""`cancel()` of the engine's sandbox over a DSPy interpreter: our interpreters stop the running code and keep the
REPL, as every sandbox does; the execution says it was cancelled."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rlm_plugins.dspy._interpreter_sandbox import InterpreterSandbox
from rlm_plugins.dspy.interpreter import SandboxInterpreter

SPIN = "kept = 1\nstarted()\nwhile True:\n    pass"


@pytest.mark.parametrize("kind", ["inprocess", "local"])
def test_cancel_stops_the_code_and_keeps_the_repl(kind: str) -> None:
    options = {"isolation": "none"} if kind == "local" else {}
    sandbox = InterpreterSandbox(lambda: SandboxInterpreter(kind, timeout=120, **options))
    started = threading.Event()

    def cancel() -> None:
        if started.wait(60):
            sandbox.cancel()

    canceller = threading.Thread(target=cancel)
    canceller.start()
    try:
        result = sandbox.execute(SPIN, tools={"started": started.set})
        canceller.join()
        assert result.cancelled and not result.timed_out
        assert sandbox.execute("print(kept)").stdout == "1"
    finally:
        sandbox.close()


async def test_acancel_stops_the_code_and_keeps_the_repl() -> None:
    sandbox = InterpreterSandbox(lambda: SandboxInterpreter("inprocess", timeout=120))
    started = asyncio.Event()

    async def mark() -> None:
        started.set()

    try:
        running = asyncio.ensure_future(sandbox.aexecute(SPIN, tools={"started": mark}))
        await asyncio.wait_for(started.wait(), 60)
        await sandbox.acancel()
        result = await asyncio.wait_for(running, 60)
        assert result.cancelled
        assert (await sandbox.aexecute("print(kept)")).stdout == "1"
    finally:
        await sandbox.aclose()
