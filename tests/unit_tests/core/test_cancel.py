"""Cancellation from every entry point ends the run and its child runs promptly and leaves no sandbox process.

The root's code starts a child RLM (rlm_query) whose code sleeps for a minute; each test cancels while both
sandboxes are busy, then checks the outcome and that every sandbox process is gone (scanning /proc)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from rlm_plugins.core.budget import Limits
from rlm_plugins.core.session import Session
from rlm_plugins.errors import SessionExpiredError
from rlm_plugins.repl import create_sandbox, isolation
from tests.unit_tests.core._scripted import by_marker, engine, repl
from tests.unit_tests.repl.conftest import wait_until_gone

SCRIPT = {
    "cancel-parent": [repl("x = 1\nprint('parent')"), repl("r = rlm_query('cancel-child', context='c')\nFINAL(r)")],
    "cancel-child": [repl("busy()\nimport time\ntime.sleep(60)\nFINAL('slept')")],
}


class Tree:
    """An engine whose runs use local sandboxes it remembers, with a `busy()` tool the child's code calls."""

    def __init__(self) -> None:
        self.sandboxes: list = []
        self.busy = threading.Event()
        self.engine = engine(
            by_marker(SCRIPT), sandbox=self.local, limits=Limits(max_depth=2), tools={"busy": self.busy.set}
        )

    def local(self, **options):
        self.sandboxes.append(create_sandbox("local", **options))
        return self.sandboxes[-1]

    def wait_busy(self) -> None:
        assert self.busy.wait(60), "the child's code never started"

    def assert_no_process_left(self) -> None:
        assert len(self.sandboxes) == 2  # the root's and the child's
        for sandbox in self.sandboxes:
            assert sandbox._proc is not None and wait_until_gone(sandbox._proc.pid) == set()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_run_cancel_keeps_the_result_so_far(mode: str) -> None:
    tree = Tree()
    run = tree.engine.new_run("cancel-parent", "ctx")
    out: list = []
    drive = run.run_sync if mode == "sync" else lambda: asyncio.run(run.run_async())
    worker = threading.Thread(target=lambda: out.append(drive()))
    worker.start()
    tree.wait_busy()
    run.cancel()
    worker.join(60)
    assert not worker.is_alive()
    (result,) = out
    assert (result.finish_reason, result.iterations) == ("cancelled", 2)
    assert result.trajectory[0]["output"] == ["parent\n"]  # the steps so far are kept
    tree.assert_no_process_left()


async def test_task_cancellation_cleans_up_then_reraises() -> None:
    tree = Tree()
    run = tree.engine.new_run("cancel-parent", "ctx")
    task = asyncio.ensure_future(run.run_async())
    await asyncio.to_thread(tree.wait_busy)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 60)
    assert run.result is not None and run.result.finish_reason == "cancelled"
    tree.assert_no_process_left()


async def test_a_second_cancellation_while_aborting_still_closes_every_sandbox() -> None:
    """A cancel scope (anyio, Starlette) cancels again at every await: the abort's cleanup must still finish."""
    tree = Tree()
    run = tree.engine.new_run("cancel-parent", "ctx")
    task = asyncio.ensure_future(run.run_async())
    await asyncio.to_thread(tree.wait_busy)
    task.cancel()
    for _ in range(20):  # keep cancelling while the abort is under way
        await asyncio.sleep(0)
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 60)
    await asyncio.to_thread(tree.assert_no_process_left)  # the cleanup goes on after the caller has returned
    assert run.result is not None and run.result.finish_reason == "cancelled"


def test_keyboard_interrupt_cleans_up_then_reraises() -> None:
    tree = Tree()
    run = tree.engine.new_run("cancel-parent", "ctx")

    def interrupt() -> None:
        tree.wait_busy()
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run.run_sync()
    assert run.result is not None and run.result.finish_reason == "cancelled"
    tree.assert_no_process_left()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_session_close_ends_the_turn_and_the_session(mode: str) -> None:
    tree = Tree()
    session = Session(tree.engine)
    out: list = []

    def turn() -> None:
        if mode == "sync":
            out.append(session.completion("ctx", root_prompt="cancel-parent"))
        else:
            out.append(asyncio.run(session.acompletion("ctx", root_prompt="cancel-parent")))

    worker = threading.Thread(target=turn)
    worker.start()
    tree.wait_busy()
    session.close()
    worker.join(60)
    assert not worker.is_alive()
    assert out[0].finish_reason == "cancelled"
    tree.assert_no_process_left()
    with pytest.raises(SessionExpiredError, match="closed"):
        session.completion("again")


def test_a_run_cancelled_before_it_starts_ends_cancelled_without_a_sandbox() -> None:
    tree = Tree()
    run = tree.engine.new_run("cancel-parent", "ctx")
    run.cancel()
    result = run.run_sync()
    assert (result.finish_reason, result.iterations, tree.sandboxes) == ("cancelled", 0, [])


def test_session_cancel_ends_the_turn_and_keeps_the_repl() -> None:
    busy = threading.Event()
    script = {  # "after" first: the second turn's prompt also shows the first turn's question in `history_0`
        "after": [repl("FINAL(kept)")],
        "slow": [repl("kept = 7\nbusy()\nimport time\ntime.sleep(60)")],
    }

    def cancel_when_busy() -> None:
        assert busy.wait(60)
        time.sleep(0.5)  # let busy()'s reply reach the sandbox before the cancel
        session.cancel()

    with Session(engine(by_marker(script), sandbox="local", tools={"busy": busy.set})) as session:
        canceller = threading.Thread(target=cancel_when_busy)
        canceller.start()
        assert session.completion("x", root_prompt="slow").finish_reason == "cancelled"
        canceller.join(60)
        assert session.completion("y", root_prompt="after").answer == 7  # the interrupted REPL lives on


@pytest.mark.parametrize("level", ["bwrap", "namespace"])
def test_session_turns_may_run_on_different_threads(level: str) -> None:
    """A sandbox outlives the thread that started it (servers run turns on pool threads)."""
    if not isolation.available(level):
        pytest.skip(f"isolation level {level!r} is not available here")
    script = {"second": [repl("FINAL(kept)")], "first": [repl("kept = 7\nFINAL(kept)")]}
    with Session(engine(by_marker(script), sandbox="local", sandbox_options={"isolation": level})) as session:
        first = threading.Thread(target=session.completion, args=("x", "first"))
        first.start()
        first.join(60)
        time.sleep(1.0)  # a death signal tied to the starting thread would have landed by now
        assert session.completion("y", root_prompt="second").answer == 7
