"""The local sandbox's host side: a closed sandbox never reads another's stream, close() and cancellation finish
even when the sandbox is frozen, and starting never happens on the event loop. At every isolation level here.

Waits are bounded generously (60 s) and the tests assert outcomes; without the fixes they hang until the
execution timeout (300 s) or the start timeout (30 s).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from typing import Any

import pytest

from rlm_plugins.errors import SandboxError
from rlm_plugins.repl import local
from rlm_plugins.repl.local import LocalSandbox

BOUND = 60.0
FREEZE = """
import os, signal, threading, time
threading.Thread(target=big, daemon=True).start()
time.sleep(0.3)
os.kill(os.getpid(), signal.SIGSTOP)
"""
"""The code asks for a large tool reply, then stops its own process: the reply can never be read."""


class _GatedClient(local.DriverClient):
    """A protocol client whose first `feed` waits for a gate: its reader thread is busy when the sandbox closes."""

    entered = threading.Event()
    gate = threading.Event()

    def feed(self, data: bytes) -> None:
        if not _GatedClient.gate.is_set():
            _GatedClient.entered.set()
            _GatedClient.gate.wait(BOUND)
        super().feed(data)


def _in_thread(fn: Any, *args: Any) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(fn(*args))
        except BaseException as exc:  # the test looks at what happened
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _kill_group(sandbox: LocalSandbox) -> None:
    proc = sandbox._proc
    if proc is not None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass


def test_a_closed_sandbox_never_reads_the_next_ones_stream(level: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _GatedClient.entered.clear()
    _GatedClient.gate.clear()
    monkeypatch.setattr(local, "DriverClient", _GatedClient)
    first = LocalSandbox(isolation=level)
    first._spawn()  # sends hello; its reader gets `ready` and stays busy in feed()
    assert _GatedClient.entered.wait(BOUND)
    first.close()
    monkeypatch.setattr(local, "DriverClient", _GatedClient.__bases__[0])
    second = LocalSandbox(isolation=level)
    try:
        second._spawn()  # a new process, possibly on the descriptor numbers the first one had
        _GatedClient.gate.set()  # the old reader goes on: it must not read the new sandbox's pipe
        starter, outcome = _in_thread(second.start)
        starter.join(BOUND)
        assert outcome == [None], outcome
        assert second.execute("1 + 1").value == 2
    finally:
        _GatedClient.gate.set()
        second.close()


def test_close_of_a_frozen_sandbox_being_sent_a_large_reply_finishes(level: str) -> None:
    replying = threading.Event()

    def big() -> str:
        time.sleep(1.0)  # the sandbox has stopped itself by now
        replying.set()
        return "x" * 50_000_000

    sandbox = LocalSandbox(isolation=level)
    sandbox.start()
    try:
        runner, outcome = _in_thread(sandbox.execute, FREEZE, {"big": big}, 300)
        assert replying.wait(BOUND)
        time.sleep(3.0)  # the reply is encoded, fills the pipe, and its writer waits
        closer, closed = _in_thread(sandbox.close)
        closer.join(BOUND)
        assert closed == [None], "close() did not finish"
        runner.join(BOUND)
        assert len(outcome) == 1 and isinstance(outcome[0], SandboxError), outcome
    finally:
        _kill_group(sandbox)


def test_wait_for_cancels_an_execution_on_a_frozen_sandbox(level: str) -> None:
    replying = threading.Event()

    async def big() -> str:
        await asyncio.sleep(1.0)
        replying.set()
        return "x" * 50_000_000

    sandbox = LocalSandbox(isolation=level)

    async def scenario() -> str:
        await sandbox.astart()
        try:
            await asyncio.wait_for(sandbox.aexecute(FREEZE, tools={"big": big}, timeout=300), 4)
        except asyncio.TimeoutError:
            return "timed out"
        finally:
            await sandbox.aclose()
        return "finished"

    try:
        runner, outcome = _in_thread(asyncio.run, scenario())
        runner.join(BOUND)
        assert outcome == ["timed out"], "wait_for could not cancel, or aclose() did not finish"
        assert replying.is_set()
    finally:
        _kill_group(sandbox)


async def test_aexecute_starts_an_unstarted_sandbox_off_the_event_loop(level: str, monkeypatch) -> None:
    threads = []
    spawn = LocalSandbox._spawn

    def spy(self: LocalSandbox) -> None:
        threads.append(threading.get_ident())
        spawn(self)

    monkeypatch.setattr(LocalSandbox, "_spawn", spy)
    sandbox = LocalSandbox(isolation=level)
    try:
        assert (await sandbox.aexecute("1 + 1")).value == 2
    finally:
        await sandbox.aclose()
    assert threads and threading.get_ident() not in threads
