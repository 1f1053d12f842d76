"""The host side of every sandbox survives whatever the code in it does or sends (issue 9, "the host side").

A tool called with the wrong arguments, a reply nested 5,000 levels deep, a value that cannot be converted, text
that is not valid Unicode, a line that is not JSON written into the channel: each is an error for that one call or
cell, and the next execution works. `cancel()` ends the running execution. Each test runs on the local sandbox at
every isolation level this machine offers, on the in-process sandbox and on e2b over the fake envd, through
`execute` and, in its twin, `aexecute`.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import threading
from collections.abc import Callable, Iterator

import pytest

from rlm_plugins.errors import SandboxCancelledError, SandboxError
from rlm_plugins.repl.base import BaseSandbox
from tests.unit_tests.repl.test_sandbox_contract import _closing

GRACE = 0.5


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def deep_tool() -> list:
    return nested(5_000)


def huge_int_tool() -> int:
    return 10**5000


def echo(*args: str, **kwargs: str) -> list[bool]:
    """Whether each argument it got is valid text (encodes as UTF-8)."""
    return [_encodes(text) for text in (*args, *kwargs.values())]


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def aecho(prompt: str) -> str:
    return prompt


def sync_one(prompt: str) -> str:
    return prompt


REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="unset")


def read_var() -> str:
    return REQUEST.get()


async def aread_var() -> str:
    await asyncio.sleep(0)
    return REQUEST.get()


CONTEXT_TOOLS = {"read_var": read_var, "aread_var": aread_var}
CONTEXT_CODE = """
import threading
seen = []
worker = threading.Thread(target=lambda: seen.extend([read_var(), aread_var()]))
worker.start()
worker.join()
[read_var(), aread_var(), *seen]
"""


CALLS = """
for call in (lambda: tool('a', model='x'), deep_tool, huge_int_tool):
    try:
        call()
    except RuntimeError as exc:
        print(type(exc).__name__, str(exc)[:60])
'after'
"""
TOOLS = {"deep_tool": deep_tool, "huge_int_tool": huge_int_tool}
ODD_VALUES = [  # code, what the cell's outcome shows: an error type, or the printed value
    ("x = []\nx.append(x)\nx", "[[...]]\n"),
    ("import math\nmath.factorial(2000)", "ValueError"),
    ("FINAL(10**5000)", "ValueError"),
    ("class Bad:\n    def __repr__(self):\n        raise RuntimeError('no repr')\nBad()", "RuntimeError"),
    ("y = []\ny.append(y)\nFINAL(y)", "ValueError"),
    ("v = []\nfor _ in range(3000):\n    v = [v]\nFINAL(v)", "ValueError"),
]
SURROGATES = "print(echo('\\udcff arg', k='\\udcff'))\n'\\udcff value'"
CHANNEL = "import gc\ndriver = next(o for o in gc.get_objects() if type(o).__name__ == 'Driver')\n"
NOISE = [
    CHANNEL + "import os\nos.write(driver.wfd, b'not json at all\\n')\nprint('after')",
    CHANNEL + "import os\nos.write(driver.wfd, b'[' * 5000 + b']' * 5000 + b'\\n')\nprint('after')",
    CHANNEL + "import os\nos.write(driver.wfd, b'{\"no\": \"type\"}\\n')\nprint('after')",
]
CLOSE_CHANNEL = CHANNEL + (
    "import os\nos.close(driver.rfile.fileno())\nif driver.fd_sock is not None:\n    driver.fd_sock.close()"
)
SPIN = "kept = 1\nstarted()\nwhile True:\n    pass"
STUBBORN = """
import time
calls = [started]
while True:
    try:
        while calls:
            calls.pop()()
        time.sleep(10)
    except BaseException:
        pass
"""


def check_calls(result, tool_kind: str, channel: bool) -> None:
    """Wrong arguments fail that call; so does a reply that cannot cross a channel (in-process, none is crossed)."""
    assert result.error is None, result.error
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ToolError tool failed: TypeError"), (tool_kind, lines)
    if channel:
        assert lines[1].startswith("ToolError deep_tool failed:"), lines
        assert lines[2].startswith("ToolError huge_int_tool failed:"), lines
    assert lines[-1] == "'after'"


def check_odd(result, expected: str) -> None:
    if expected.endswith("\n"):
        assert (result.error, result.stdout) == (None, expected)
    else:
        assert result.error is not None and result.error.type == expected, result
        assert result.final is None


def check_surrogates(result) -> None:
    assert result.error is None, result.error
    assert result.stdout == "[True, True]\n'\\udcff value'\n"
    assert result.value == "? value"


def check_final_text(result) -> None:
    assert result.final.value == "? final"
    assert result.final.value.encode("utf-8")


def cancel_once_started(sandbox: BaseSandbox) -> tuple[threading.Thread, dict]:
    """A thread that cancels `sandbox`'s execution as soon as its code has called `started()`."""
    started = threading.Event()
    tools = {"started": started.set}

    def cancel() -> None:
        if started.wait(60):
            sandbox.cancel()

    thread = threading.Thread(target=cancel)
    thread.start()
    return thread, tools


class HostSideContract:
    """What every backend's host side survives; a subclass sets the `new_sandbox` fixture."""

    channel = True
    """Whether values cross a JSON channel (not in-process)."""

    @pytest.fixture
    def new_sandbox(self) -> Callable[..., BaseSandbox]:
        raise NotImplementedError

    @pytest.fixture
    def sandbox(self, new_sandbox):
        with new_sandbox(grace=GRACE) as sb:
            yield sb

    @pytest.fixture
    async def asandbox(self, new_sandbox):
        async with new_sandbox(grace=GRACE) as sb:
            yield sb

    @pytest.mark.parametrize("tool_kind", ["sync", "async"])
    def test_execute_bad_tool_calls_are_errors_of_that_call(self, sandbox, tool_kind: str) -> None:
        tools = {**TOOLS, "tool": aecho if tool_kind == "async" else sync_one}
        check_calls(sandbox.execute(CALLS, tools=tools), tool_kind, self.channel)
        assert sandbox.execute("1 + 1").value == 2

    @pytest.mark.parametrize("tool_kind", ["sync", "async"])
    async def test_aexecute_bad_tool_calls_are_errors_of_that_call(self, asandbox, tool_kind: str) -> None:
        tools = {**TOOLS, "tool": aecho if tool_kind == "async" else sync_one}
        check_calls(await asyncio.wait_for(asandbox.aexecute(CALLS, tools=tools), 60), tool_kind, self.channel)
        assert (await asandbox.aexecute("1 + 1")).value == 2

    def test_execute_tools_run_in_the_callers_contextvars(self, sandbox) -> None:
        token = REQUEST.set("caller")
        try:
            result = sandbox.execute(CONTEXT_CODE, tools=CONTEXT_TOOLS)
        finally:
            REQUEST.reset(token)
        assert result.value == ["caller"] * 4, result

    async def test_aexecute_tools_run_in_the_callers_contextvars(self, asandbox) -> None:
        REQUEST.set("caller")  # this test's own context
        result = await asyncio.wait_for(asandbox.aexecute(CONTEXT_CODE, tools=CONTEXT_TOOLS), 60)
        assert result.value == ["caller"] * 4, result

    @pytest.mark.parametrize(("code", "expected"), ODD_VALUES)
    def test_execute_unusual_values_are_cell_errors(self, sandbox, code: str, expected: str) -> None:
        check_odd(sandbox.execute(code), expected)
        assert sandbox.execute("1 + 1").value == 2

    @pytest.mark.parametrize(("code", "expected"), ODD_VALUES)
    async def test_aexecute_unusual_values_are_cell_errors(self, asandbox, code: str, expected: str) -> None:
        check_odd(await asandbox.aexecute(code), expected)
        assert (await asandbox.aexecute("1 + 1")).value == 2

    def test_execute_lone_surrogates_are_sanitized(self, sandbox) -> None:
        check_surrogates(sandbox.execute(SURROGATES, tools={"echo": echo}))
        check_final_text(sandbox.execute("FINAL('\\udcff final')"))

    async def test_aexecute_lone_surrogates_are_sanitized(self, asandbox) -> None:
        check_surrogates(await asandbox.aexecute(SURROGATES, tools={"echo": echo}))
        check_final_text(await asandbox.aexecute("FINAL('\\udcff final')"))

    def test_cancel_ends_the_running_execution_and_keeps_the_repl(self, sandbox) -> None:
        sandbox.cancel()  # nothing runs: a no-op
        canceller, tools = cancel_once_started(sandbox)
        result = sandbox.execute(SPIN, tools=tools, timeout=120)
        canceller.join()
        assert (result.cancelled, result.timed_out, result.ok) == (True, False, False)
        assert sandbox.execute("kept").value == 1

    async def test_acancel_ends_the_running_execution_and_keeps_the_repl(self, asandbox) -> None:
        await asandbox.acancel()
        started = asyncio.Event()

        async def mark() -> None:
            started.set()

        running = asyncio.ensure_future(asandbox.aexecute(SPIN, tools={"started": mark}, timeout=120))
        await asyncio.wait_for(started.wait(), 60)
        await asandbox.acancel()
        result = await asyncio.wait_for(running, 60)
        assert (result.cancelled, result.timed_out, result.ok) == (True, False, False)
        assert (await asandbox.aexecute("kept")).value == 1


class OutOfProcessHostSide:
    """What only a sandbox in another process meets: bytes written into its channel, code that ignores a cancel."""

    @pytest.mark.parametrize("code", NOISE, ids=["not-json", "nested-5000", "no-type"])
    def test_execute_noise_in_the_channel_is_reported_in_that_cell(self, sandbox, code: str) -> None:
        result = sandbox.execute(code)
        assert result.stdout == "after\n"
        assert "malformed message" in result.stderr
        assert sandbox.execute("1 + 1").value == 2

    @pytest.mark.parametrize("code", NOISE, ids=["not-json", "nested-5000", "no-type"])
    async def test_aexecute_noise_in_the_channel_is_reported_in_that_cell(self, asandbox, code: str) -> None:
        result = await asyncio.wait_for(asandbox.aexecute(code), 60)
        assert result.stdout == "after\n"
        assert "malformed message" in result.stderr
        assert (await asandbox.aexecute("1 + 1")).value == 2

    def test_closed_channel_fails_as_a_sandbox_error(self, sandbox) -> None:
        sandbox.execute(CLOSE_CHANNEL)
        with pytest.raises(SandboxError):  # the load, or the execution after it when the load got through
            sandbox.load("big", "x" * 300_000)
            sandbox.execute("1", timeout=30)

    async def test_aclosed_channel_fails_as_a_sandbox_error(self, asandbox) -> None:
        await asandbox.aexecute(CLOSE_CHANNEL)
        with pytest.raises(SandboxError):
            await asyncio.wait_for(asandbox.aload("big", "x" * 300_000), 60)
            await asandbox.aexecute("1", timeout=30)

    def test_cancel_kills_code_that_ignores_it(self, sandbox) -> None:
        canceller, tools = cancel_once_started(sandbox)
        with pytest.raises(SandboxCancelledError, match="cancel"):
            sandbox.execute(STUBBORN, tools=tools, timeout=120)
        canceller.join()
        with pytest.raises(SandboxError):
            sandbox.execute("1")

    async def test_acancel_kills_code_that_ignores_it(self, asandbox) -> None:
        started = asyncio.Event()

        async def mark() -> None:
            started.set()

        running = asyncio.ensure_future(asandbox.aexecute(STUBBORN, tools={"started": mark}, timeout=120))
        await asyncio.wait_for(started.wait(), 60)
        await asandbox.acancel()
        with pytest.raises(SandboxCancelledError, match="cancel"):
            await asyncio.wait_for(running, 60)


class TestLocalHostSide(HostSideContract, OutOfProcessHostSide):
    @pytest.fixture
    def new_sandbox(self, level: str) -> Iterator[Callable[..., BaseSandbox]]:
        yield from _closing("local", isolation=level)


class TestInProcessHostSide(HostSideContract):
    channel = False

    @pytest.fixture
    def new_sandbox(self) -> Iterator[Callable[..., BaseSandbox]]:
        yield from _closing("inprocess")


@pytest.mark.skipif(importlib.util.find_spec("e2b") is None, reason="the E2B SDK is not installed: pip install e2b")
@pytest.mark.filterwarnings("ignore:E2BSandbox uploads the driver")
class TestE2BHostSide(HostSideContract, OutOfProcessHostSide):
    @pytest.fixture
    def new_sandbox(self, make_e2b) -> Callable[..., BaseSandbox]:
        return make_e2b
