"""The in-process sandbox: the core sandbox behaviours that apply to code run inside the host process.

It has no isolation (`isolation == "none"`), so there are no attack tests here, and no `os._exit` test: that
would end the test run itself.
"""

from __future__ import annotations

import asyncio
import pathlib
import threading
import time

import pytest

from rlm_plugins.errors import ConfigurationError, SandboxClosedError, SandboxError, SandboxTimeoutError
from rlm_plugins.repl import InProcessSandbox, create_sandbox, inprocess

THREADS = """
import threading
results = [None] * 16
def work(i):
    results[i] = {tool}(i)
threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
results
"""
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


@pytest.fixture
def sandbox():
    with InProcessSandbox(grace=0.3) as sb:
        yield sb


@pytest.fixture
async def asandbox():
    async with InProcessSandbox(grace=0.3) as sb:
        yield sb


def slow_double(x: int) -> int:
    time.sleep(0.2)
    return 2 * x


def test_is_not_isolated_and_says_so() -> None:
    sb = create_sandbox("inprocess")
    assert isinstance(sb, InProcessSandbox)
    assert (sb.kind, sb.isolation) == ("inprocess", "none")
    assert "NOT isolated" in inprocess.__doc__
    assert "no isolation" in InProcessSandbox.__doc__


def test_execute_keeps_one_namespace(sandbox) -> None:
    assert sandbox.execute("x = 1").ok
    assert sandbox.execute("x += 1").ok
    result = sandbox.execute("print('x is')\nx")
    assert (result.stdout, result.value) == ("x is\n2\n", 2)


async def test_aexecute_keeps_one_namespace(asandbox) -> None:
    assert (await asandbox.aexecute("x = 1")).ok
    assert (await asandbox.aexecute("x += 1")).ok
    result = await asandbox.aexecute("print('x is')\nx")
    assert (result.stdout, result.value) == ("x is\n2\n", 2)


def _context_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "context.txt"
    path.write_bytes(b"line\n" * 1000 + b"needle \xff\n")
    return path


LOADS = [
    ("text", "hello", "text", "'hello'"),
    ("raw", b"\x00\xff", "raw", "b'\\x00\\xff'"),
    ("items", [1, "a"], "items", "[1, 'a']"),
    ("mapping", {"k": 1}, "mapping['k']", "1"),
]
PATH_CHECK = "(len(from_file), from_file.endswith('needle \\ufffd\\n'), type(mapped).__name__, mapped.find(b'needle'))"
PATH_SHOWN = "(5009, True, 'mmap', 5000)\n"


def test_load_values(sandbox, tmp_path) -> None:
    for name, value, expr, shown in LOADS:
        sandbox.load(name, value)
        assert sandbox.execute(expr).stdout == shown + "\n", name
    path = _context_file(tmp_path)
    assert sandbox.load("from_file", path) == {"type": "str", "length": 5009}
    assert sandbox.load("mapped", path, format="mmap") == {"type": "mmap", "length": 5009}
    assert sandbox.execute(PATH_CHECK).stdout == PATH_SHOWN


async def test_aload_values(asandbox, tmp_path) -> None:
    for name, value, expr, shown in LOADS:
        await asandbox.aload(name, value)
        assert (await asandbox.aexecute(expr)).stdout == shown + "\n", name
    path = _context_file(tmp_path)
    assert await asandbox.aload("from_file", path) == {"type": "str", "length": 5009}
    assert await asandbox.aload("mapped", path, format="mmap") == {"type": "mmap", "length": 5009}
    assert (await asandbox.aexecute(PATH_CHECK)).stdout == PATH_SHOWN


def test_load_rejects_bad_names_and_mmap_of_a_value(sandbox) -> None:
    with pytest.raises(ConfigurationError, match="must be a Python identifier"):
        sandbox.load("1x", "v")
    with pytest.raises(ConfigurationError, match=r"format='mmap' needs a pathlib\.Path"):
        sandbox.load("x", b"bytes", format="mmap")


def _check_concurrent(result, elapsed: float, expected: list[int]) -> None:
    assert result.error is None, result.error
    assert result.stdout == f"{expected}\n"
    assert len(result.tool_calls) == 16
    assert elapsed < 2.0, f"16 calls of 0.2 s took {elapsed:.2f} s: they did not run concurrently"


def test_execute_serves_concurrent_tool_calls(sandbox) -> None:
    started = time.perf_counter()
    result = sandbox.execute(THREADS.format(tool="slow_double"), tools={"slow_double": slow_double})
    _check_concurrent(result, time.perf_counter() - started, [2 * i for i in range(16)])


async def test_aexecute_serves_concurrent_tool_calls(asandbox) -> None:
    started = time.perf_counter()
    result = await asandbox.aexecute(THREADS.format(tool="slow_double"), tools={"slow_double": slow_double})
    _check_concurrent(result, time.perf_counter() - started, [2 * i for i in range(16)])


async def test_aexecute_runs_async_tools_on_the_callers_loop(asandbox) -> None:
    loops = set()

    async def slow_inc(x: int) -> int:
        loops.add(asyncio.get_running_loop())
        await asyncio.sleep(0.2)
        return x + 1

    started = time.perf_counter()
    result = await asandbox.aexecute(THREADS.format(tool="slow_inc"), tools={"slow_inc": slow_inc})
    _check_concurrent(result, time.perf_counter() - started, [i + 1 for i in range(16)])
    assert loops == {asyncio.get_running_loop()}


def test_execute_runs_async_tools_too(sandbox) -> None:
    async def slow_inc(x: int) -> int:
        await asyncio.sleep(0.2)
        return x + 1

    started = time.perf_counter()
    result = sandbox.execute(THREADS.format(tool="slow_inc"), tools={"slow_inc": slow_inc})
    _check_concurrent(result, time.perf_counter() - started, [i + 1 for i in range(16)])


def failing_tool(x: int) -> int:
    raise ValueError(f"bad x={x}")


TOOL_ERROR = "try:\n    failing_tool(3)\nexcept RuntimeError as e:\n    print(e)"


def test_execute_tool_errors_reach_user_code(sandbox) -> None:
    result = sandbox.execute(TOOL_ERROR, tools={"failing_tool": failing_tool})
    assert result.stdout == "failing_tool failed: ValueError: bad x=3\n"
    assert [(c.name, c.error) for c in result.tool_calls] == [("failing_tool", "ValueError: bad x=3")]


async def test_aexecute_tool_errors_reach_user_code(asandbox) -> None:
    result = await asandbox.aexecute(TOOL_ERROR, tools={"failing_tool": failing_tool})
    assert result.stdout == "failing_tool failed: ValueError: bad x=3\n"
    assert [(c.name, c.error) for c in result.tool_calls] == [("failing_tool", "ValueError: bad x=3")]


def test_execute_final_answers() -> None:
    with InProcessSandbox(final_fields=["answer"]) as sb:
        assert sb.execute("FINAL([1, 2])\nnever = 1").final.value == [1, 2]
        missing = sb.execute("SUBMIT()")
        assert (missing.final, missing.error.type) == (None, "TypeError")
        assert sb.execute("SUBMIT(answer='a')").final.fields == {"answer": "a"}


async def test_aexecute_final_answers() -> None:
    async with InProcessSandbox(final_fields=["answer"]) as sb:
        assert (await sb.aexecute("FINAL([1, 2])\nnever = 1")).final.value == [1, 2]
        missing = await sb.aexecute("SUBMIT()")
        assert (missing.final, missing.error.type) == (None, "TypeError")
        assert (await sb.aexecute("SUBMIT(answer='a')")).final.fields == {"answer": "a"}


def test_execute_syntax_error_is_distinguishable(sandbox) -> None:
    result = sandbox.execute("def f(:")
    assert result.error.is_syntax_error
    assert not sandbox.execute("1 / 0").error.is_syntax_error


def test_execute_timeout_interrupts_and_next_execution_works(sandbox) -> None:
    result = sandbox.execute("kept = 1\nwhile True:\n    pass", timeout=0.3)
    assert (result.timed_out, result.error) == (True, None)
    assert sandbox.execute("kept").stdout == "1\n"


async def test_aexecute_timeout_interrupts_and_next_execution_works(asandbox) -> None:
    result = await asandbox.aexecute("kept = 1\nwhile True:\n    pass", timeout=0.3)
    assert (result.timed_out, result.error) == (True, None)
    assert (await asandbox.aexecute("kept")).stdout == "1\n"


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


HUGE_CUT = 200_000_001 - 10_000


def test_execute_huge_print_is_truncated(sandbox) -> None:
    result = sandbox.execute("print('x' * 200_000_000)")
    assert result.stdout_cut == HUGE_CUT
    assert result.stdout.endswith(f"[output truncated: {HUGE_CUT:,} more characters not shown]")


async def test_aexecute_huge_print_is_truncated(asandbox) -> None:
    result = await asandbox.aexecute("print('x' * 200_000_000)")
    assert result.stdout_cut == HUGE_CUT
    assert result.stdout.endswith(f"[output truncated: {HUGE_CUT:,} more characters not shown]")


def test_execute_refuses_a_second_concurrent_execution(sandbox) -> None:
    first = threading.Thread(target=sandbox.execute, args=("import time\ntime.sleep(0.3)",))
    first.start()
    time.sleep(0.1)
    try:
        with pytest.raises(SandboxError, match="already running code"):
            sandbox.execute("1")
    finally:
        first.join()


async def test_aexecute_refuses_a_second_concurrent_execution(asandbox) -> None:
    first = asyncio.ensure_future(asandbox.aexecute("import time\ntime.sleep(0.3)"))
    await asyncio.sleep(0.1)
    with pytest.raises(SandboxError, match="already running code"):
        await asandbox.aexecute("1")
    assert (await first).ok


def test_execute_after_close() -> None:
    sb = InProcessSandbox()
    sb.start()
    sb.close()
    sb.close()
    with pytest.raises(SandboxClosedError):
        sb.execute("1")


async def test_aexecute_after_close() -> None:
    sb = InProcessSandbox()
    await sb.astart()
    await sb.aclose()
    with pytest.raises(SandboxClosedError):
        await sb.aexecute("1")
