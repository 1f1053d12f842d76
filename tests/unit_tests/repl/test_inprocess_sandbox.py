"""What only the in-process sandbox does: it says it is not isolated, and its code runs on a thread it cannot kill.

The behaviour every backend promises is in `test_sandbox_contract.py` (`TestInProcessSandbox`). It has no
isolation (`isolation == "none"`), so there are no attack tests here, and no `os._exit` test: that would end the
test run itself.
"""

from __future__ import annotations

import ctypes
import threading
import time

import pytest

from rlm_plugins.errors import ConfigurationError, SandboxTimeoutError
from rlm_plugins.repl import InProcessSandbox, create_sandbox, inprocess

# Ignores the interrupt, but ends by itself after 2 s: a thread of the test process can't be killed.
STUBBORN = """
import time
end = time.monotonic() + 2
while time.monotonic() < end:
    try:
        time.sleep(0.05)
    except BaseException:
        pass
"""
MMAP_OF_A_VALUE = r"format='mmap' needs a pathlib\.Path"


@pytest.fixture
def sandbox():
    with InProcessSandbox(grace=0.3) as sb:
        yield sb


@pytest.fixture
async def asandbox():
    async with InProcessSandbox(grace=0.3) as sb:
        yield sb


def test_is_not_isolated_and_says_so() -> None:
    sb = create_sandbox("inprocess")
    assert isinstance(sb, InProcessSandbox)
    assert (sb.kind, sb.isolation) == ("inprocess", "none")
    assert "NOT isolated" in inprocess.__doc__
    assert "no isolation" in InProcessSandbox.__doc__


def test_load_refuses_mmap_of_a_value(sandbox) -> None:
    """Only a file can be mapped here (the other backends write the value to a file in the sandbox and map that)."""
    with pytest.raises(ConfigurationError, match=MMAP_OF_A_VALUE):
        sandbox.load("x", b"bytes", format="mmap")


async def test_aload_refuses_mmap_of_a_value(asandbox) -> None:
    with pytest.raises(ConfigurationError, match=MMAP_OF_A_VALUE):
        await asandbox.aload("x", b"bytes", format="mmap")


def test_execute_ignoring_the_interrupt_makes_it_unusable(sandbox) -> None:
    with pytest.raises(SandboxTimeoutError, match="cannot kill it and is now unusable"):
        sandbox.execute(STUBBORN, timeout=0.2)
    with pytest.raises(SandboxTimeoutError):
        sandbox.execute("1")


async def test_aexecute_ignoring_the_interrupt_makes_it_unusable(asandbox) -> None:
    with pytest.raises(SandboxTimeoutError, match="cannot kill it and is now unusable"):
        await asandbox.aexecute(STUBBORN, timeout=0.2)
    with pytest.raises(SandboxTimeoutError):
        await asandbox.aexecute("1")


LATE = "import time\ntime.sleep(0.3)\ndone()"


def _late_interrupts(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Make every interrupt land late: after the cell has called `done()` and its worker has gone idle.

    That is the race of a timeout that fires just as a cell ends, made certain.
    """
    finished = threading.Event()
    real = ctypes.pythonapi.PyThreadState_SetAsyncExc

    def late(thread_id: object, exc: object) -> int:
        if exc is not None:
            finished.wait(10)
            time.sleep(0.2)
        return real(thread_id, exc)

    monkeypatch.setattr(ctypes.pythonapi, "PyThreadState_SetAsyncExc", late)
    return {"done": finished.set}


def test_a_timeout_racing_the_end_of_a_cell_never_breaks_the_next_one(monkeypatch) -> None:
    tools = _late_interrupts(monkeypatch)
    with InProcessSandbox(grace=5) as sb:
        result = sb.execute(LATE, tools=tools, timeout=0.1)
        assert result.ok or result.timed_out
        assert sb.execute("1 + 1", timeout=10).value == 2
        assert sb.execute("2 + 2", timeout=10).value == 4


async def test_a_timeout_racing_the_end_of_an_async_cell_never_breaks_the_next_one(monkeypatch) -> None:
    tools = _late_interrupts(monkeypatch)
    async with InProcessSandbox(grace=5) as sb:
        result = await sb.aexecute(LATE, tools=tools, timeout=0.1)
        assert result.ok or result.timed_out
        assert (await sb.aexecute("1 + 1", timeout=10)).value == 2
        assert (await sb.aexecute("2 + 2", timeout=10)).value == 4
