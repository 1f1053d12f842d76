"""The local sandbox at every isolation level this machine offers (levels that do not work here are skipped).

Each behaviour is tested through `execute` and, in its twin, through `aexecute`.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import threading
import time
import warnings

import pytest

from rlm_plugins.errors import (
    ConfigurationError,
    IsolationUnavailableError,
    SandboxClosedError,
    SandboxError,
    SandboxTerminatedError,
    SandboxTimeoutError,
)
from rlm_plugins.repl import LocalSandbox, isolation
from rlm_plugins.repl.base import SMALL_VALUE_BYTES

GRACE = 0.5
SPIN = "while True:\n    pass"
STUBBORN = "import time\nwhile True:\n    try:\n        time.sleep(1)\n    except BaseException:\n        pass"
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


@pytest.fixture
def sandbox(level: str):
    with LocalSandbox(isolation=level, grace=GRACE) as sb:
        yield sb


@pytest.fixture
async def asandbox(level: str):
    async with LocalSandbox(isolation=level, grace=GRACE) as sb:
        yield sb


def slow_double(x: int) -> int:
    time.sleep(0.2)
    return 2 * x


def test_execute_keeps_one_namespace(sandbox, level: str) -> None:
    assert sandbox.isolation == level
    assert sandbox.execute("import os\nx = 1\npid = os.getpid()").ok
    assert sandbox.execute("x += 1").ok
    assert sandbox.execute("(x, os.getpid() == pid)").stdout == "(2, True)\n"


async def test_aexecute_keeps_one_namespace(asandbox, level: str) -> None:
    assert asandbox.isolation == level
    assert (await asandbox.aexecute("import os\nx = 1\npid = os.getpid()")).ok
    assert (await asandbox.aexecute("x += 1")).ok
    assert (await asandbox.aexecute("(x, os.getpid() == pid)")).stdout == "(2, True)\n"


def _context_files(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    text = tmp_path / "context.txt"
    text.write_text("line\n" * 50_000 + "needle\n")
    data = tmp_path / "context.json"
    data.write_text('{"rows": [1, 2, 3]}')
    return text, data


LOADS = [
    ("small_str", "hello", "small_str", "'hello'"),
    ("big_str", "é" * SMALL_VALUE_BYTES, "(len(big_str), big_str[-1])", f"({SMALL_VALUE_BYTES}, 'é')"),
    ("raw", b"\x00\xff bytes", "raw", "b'\\x00\\xff bytes'"),
    ("items", [1, "a", None], "items", "[1, 'a', None]"),
    ("big_list", list(range(20_000)), "(type(big_list).__name__, sum(big_list))", "('list', 199990000)"),
    ("mapping", {"k": [1, 2]}, "mapping['k']", "[1, 2]"),
]


def _check_path_loads(text_info: dict, mmap_info: dict, json_info: dict, shown: str) -> None:
    assert text_info == {"type": "str", "length": 250_007}
    assert mmap_info == {"type": "mmap", "length": 250_007}
    assert json_info == {"type": "dict", "length": 1}
    assert shown == "(True, 250000, b'needle', [1, 2, 3])\n"


PATH_CHECK = "(text == bytes(mapped).decode(), mapped.find(b'needle'), mapped[250000:250006], data['rows'])"


def test_load_values(sandbox, tmp_path) -> None:
    for name, value, expr, shown in LOADS:
        sandbox.load(name, value)
        assert sandbox.execute(expr).stdout == shown + "\n", name
    text, data = _context_files(tmp_path)
    infos = sandbox.load("text", text), sandbox.load("mapped", text, format="mmap"), sandbox.load("data", data)
    _check_path_loads(*infos, sandbox.execute(PATH_CHECK).stdout)


async def test_aload_values(asandbox, tmp_path) -> None:
    for name, value, expr, shown in LOADS:
        await asandbox.aload(name, value)
        assert (await asandbox.aexecute(expr)).stdout == shown + "\n", name
    text, data = _context_files(tmp_path)
    infos = (
        await asandbox.aload("text", text),
        await asandbox.aload("mapped", text, format="mmap"),
        await asandbox.aload("data", data),
    )
    _check_path_loads(*infos, (await asandbox.aexecute(PATH_CHECK)).stdout)


def test_load_rejects_bad_names_and_missing_files(sandbox, tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="must be a Python identifier"):
        sandbox.load("not a name", "x")
    with pytest.raises(ConfigurationError, match="cannot read the context file"):
        sandbox.load("context", tmp_path / "missing.txt")
    assert sandbox.execute("1").ok


async def test_aload_rejects_bad_names_and_missing_files(asandbox, tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="must be a Python identifier"):
        await asandbox.aload("not a name", "x")
    with pytest.raises(ConfigurationError, match="cannot read the context file"):
        await asandbox.aload("context", tmp_path / "missing.txt")
    assert (await asandbox.aexecute("1")).ok


NON_UTF8 = """
import os, sys
print(raw)
print(raw.decode('utf-8', 'surrogateescape'))
sys.stderr.write('\\udcff on stderr\\n')
os.write(1, b'\\xff\\xfe to fd 1\\n')
(len(raw), text.count('\\ufffd'))
"""


def _non_utf8_inputs(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"caf\xe9 \xff\xfe ok")
    return path


def _check_non_utf8(result, after) -> None:
    assert result.error is None
    assert result.stdout.splitlines()[0] == "b'\\xff\\xfe\\x80 ok'"
    assert result.stdout.splitlines()[-1] == "(6, 3)"
    assert "on stderr" in result.stderr
    assert after.stdout == "'still fine'\n"


def test_non_utf8_bytes_do_not_break_the_channel(sandbox, tmp_path) -> None:
    sandbox.load("raw", b"\xff\xfe\x80 ok")
    sandbox.load("text", _non_utf8_inputs(tmp_path))
    _check_non_utf8(sandbox.execute(NON_UTF8), sandbox.execute("'still fine'"))


async def test_anon_utf8_bytes_do_not_break_the_channel(asandbox, tmp_path) -> None:
    await asandbox.aload("raw", b"\xff\xfe\x80 ok")
    await asandbox.aload("text", _non_utf8_inputs(tmp_path))
    _check_non_utf8(await asandbox.aexecute(NON_UTF8), await asandbox.aexecute("'still fine'"))


def _check_concurrent(result, elapsed: float, expected: list[int]) -> None:
    assert result.error is None, result.error
    assert result.stdout == f"{expected}\n"  # every thread got the answer to its own call
    assert len(result.tool_calls) == 16
    assert elapsed < 2.0, f"16 calls of 0.2 s took {elapsed:.2f} s: they did not run concurrently"


def test_execute_serves_concurrent_tool_calls_by_id(sandbox) -> None:
    started = time.perf_counter()
    result = sandbox.execute(THREADS.format(tool="slow_double"), tools={"slow_double": slow_double})
    _check_concurrent(result, time.perf_counter() - started, [2 * i for i in range(16)])


async def test_aexecute_serves_concurrent_tool_calls_by_id(asandbox) -> None:
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


TOOL_ERROR = "try:\n    failing_tool(3)\nexcept RuntimeError as e:\n    print(e)\nundefined_tool()"


def _check_tool_error(result) -> None:
    assert result.stdout == "failing_tool failed: ValueError: bad x=3\n"
    assert result.error.type == "NameError"  # a tool not passed to this execution does not exist
    assert [(c.name, c.error) for c in result.tool_calls] == [("failing_tool", "ValueError: bad x=3")]


def test_execute_tool_errors_reach_user_code(sandbox) -> None:
    _check_tool_error(sandbox.execute(TOOL_ERROR, tools={"failing_tool": failing_tool}))


async def test_aexecute_tool_errors_reach_user_code(asandbox) -> None:
    _check_tool_error(await asandbox.aexecute(TOOL_ERROR, tools={"failing_tool": failing_tool}))


def test_execute_timeout_interrupts_and_next_execution_works(sandbox) -> None:
    result = sandbox.execute("kept = 1\n" + SPIN, timeout=0.3)
    assert (result.timed_out, result.error, result.ok) == (True, None, False)
    assert sandbox.execute("kept").stdout == "1\n"


async def test_aexecute_timeout_interrupts_and_next_execution_works(asandbox) -> None:
    result = await asandbox.aexecute("kept = 1\n" + SPIN, timeout=0.3)
    assert (result.timed_out, result.error, result.ok) == (True, None, False)
    assert (await asandbox.aexecute("kept")).stdout == "1\n"


def test_execute_ignoring_the_interrupt_kills_the_sandbox(sandbox, processes) -> None:
    session = sandbox._proc.pid
    with pytest.raises(SandboxTimeoutError, match="ignored the interrupt"):
        sandbox.execute(STUBBORN, timeout=0.3)
    assert processes.wait_until_gone(session) == set()
    with pytest.raises(SandboxTerminatedError):
        sandbox.execute("1")


async def test_aexecute_ignoring_the_interrupt_kills_the_sandbox(asandbox, processes) -> None:
    session = asandbox._proc.pid
    with pytest.raises(SandboxTimeoutError, match="ignored the interrupt"):
        await asandbox.aexecute(STUBBORN, timeout=0.3)
    assert processes.wait_until_gone(session) == set()
    with pytest.raises(SandboxTerminatedError):
        await asandbox.aexecute("1")


def test_execute_os_exit_is_a_terminal_error(sandbox) -> None:
    with pytest.raises(SandboxTerminatedError, match="exited with code 3; its REPL state is lost") as info:
        sandbox.execute("import os\nos._exit(3)")
    assert not isinstance(info.value, SandboxTimeoutError)
    with pytest.raises(SandboxTerminatedError, match="exited with code 3"):
        sandbox.execute("1")


async def test_aexecute_os_exit_is_a_terminal_error(asandbox) -> None:
    with pytest.raises(SandboxTerminatedError, match="exited with code 3; its REPL state is lost") as info:
        await asandbox.aexecute("import os\nos._exit(3)")
    assert not isinstance(info.value, SandboxTimeoutError)
    with pytest.raises(SandboxTerminatedError, match="exited with code 3"):
        await asandbox.aexecute("1")


HUGE = "print('x' * 200_000_000)"
HUGE_CUT = 200_000_001 - 10_000


def _check_huge(result) -> None:
    assert result.truncated
    assert result.stdout_cut == HUGE_CUT
    assert result.stdout.startswith("x" * 10_000 + "\n... [output truncated: ")
    assert result.stdout.endswith(f"[output truncated: {HUGE_CUT:,} more characters not shown]")


def test_execute_huge_print_is_truncated_inside_the_sandbox(sandbox) -> None:
    _check_huge(sandbox.execute(HUGE))
    assert sandbox.execute("'next'").stdout == "'next'\n"


async def test_aexecute_huge_print_is_truncated_inside_the_sandbox(asandbox) -> None:
    _check_huge(await asandbox.aexecute(HUGE))
    assert (await asandbox.aexecute("'next'")).stdout == "'next'\n"


def test_execute_refuses_a_second_concurrent_execution(sandbox) -> None:
    first = threading.Thread(target=sandbox.execute, args=("import time\ntime.sleep(0.3)",))
    first.start()
    time.sleep(0.1)
    try:
        with pytest.raises(SandboxError, match="already running code"):
            sandbox.execute("1")
    finally:
        first.join()
    assert sandbox.execute("1").ok


async def test_aexecute_refuses_a_second_concurrent_execution(asandbox) -> None:
    first = asyncio.ensure_future(asandbox.aexecute("import time\ntime.sleep(0.3)"))
    await asyncio.sleep(0.1)
    with pytest.raises(SandboxError, match="already running code"):
        await asandbox.aexecute("1")
    assert (await first).ok


def _leftovers(processes, baseline: set[int], sessions: list[int], workdirs: list[str]) -> dict:
    return {
        "children": processes.children() - baseline,
        "sessions": {sid: left for sid in sessions if (left := processes.wait_until_gone(sid))},
        "workdirs": [d for d in workdirs if os.path.exists(d)],
    }


def _cycles(level: str) -> int:
    """100 cycles at the level `auto` picks; 20 at the others, to keep the suite quick (each start is ~50 ms)."""
    return 100 if level == isolation.best_level() else 20


def test_create_close_cycles_leave_nothing_behind(level: str, processes) -> None:
    baseline = processes.children()
    sessions, workdirs = [], []
    for i in range(_cycles(level)):
        with LocalSandbox(isolation=level) as sb:
            sessions.append(sb._proc.pid)
            workdirs.append(sb._workdir)
            if i % 10 == 0:
                sb.execute("import subprocess\nsubprocess.Popen(['sleep', '60'])")  # a child it never reaps
    assert _leftovers(processes, baseline, sessions, workdirs) == {"children": set(), "sessions": {}, "workdirs": []}
    with pytest.raises(SandboxClosedError):
        sb.execute("1")
    with pytest.raises(SandboxClosedError):
        sb.start()
    sb.close()  # a second close is a no-op


async def test_acreate_aclose_cycles_leave_nothing_behind(level: str, processes) -> None:
    baseline = processes.children()
    sessions, workdirs = [], []
    for i in range(_cycles(level)):
        async with LocalSandbox(isolation=level) as sb:
            sessions.append(sb._proc.pid)
            workdirs.append(sb._workdir)
            if i % 10 == 0:
                await sb.aexecute("import subprocess\nsubprocess.Popen(['sleep', '60'])")
    assert _leftovers(processes, baseline, sessions, workdirs) == {"children": set(), "sessions": {}, "workdirs": []}
    with pytest.raises(SandboxClosedError):
        await sb.aexecute("1")
    await sb.aclose()


def test_require_takes_the_best_level() -> None:
    best = isolation.best_level()
    if best == "none":
        pytest.skip("no isolation level works on this machine, so isolation='require' cannot start here")
    with LocalSandbox(isolation="require") as sb:
        assert sb.isolation == best
        assert sb.execute("1").ok


async def test_arequire_takes_the_best_level() -> None:
    best = isolation.best_level()
    if best == "none":
        pytest.skip("no isolation level works on this machine, so isolation='require' cannot start here")
    async with LocalSandbox(isolation="require") as sb:
        assert sb.isolation == best
        assert (await sb.aexecute("1")).ok


@pytest.fixture
def no_isolation_here(monkeypatch):
    """Pretend this machine has neither bubblewrap nor namespaces."""
    monkeypatch.setattr(isolation, "available", lambda level: level == "none")
    monkeypatch.setattr(isolation, "best_level", lambda: "none")


REQUIRE_MESSAGE = r"isolation='require' but neither bubblewrap nor namespaces work here: install bubblewrap"


def test_require_refuses_to_run_unisolated(no_isolation_here, processes) -> None:
    baseline = processes.children()
    sb = LocalSandbox(isolation="require")
    with pytest.raises(IsolationUnavailableError, match=REQUIRE_MESSAGE):
        sb.start()
    assert (sb._proc, sb._workdir, processes.children() - baseline) == (None, None, set())


async def test_arequire_refuses_to_run_unisolated(no_isolation_here, processes) -> None:
    baseline = processes.children()
    sb = LocalSandbox(isolation="require")
    with pytest.raises(IsolationUnavailableError, match=REQUIRE_MESSAGE):
        await sb.astart()
    assert (sb._proc, sb._workdir, processes.children() - baseline) == (None, None, set())


def test_auto_falls_back_to_none_with_a_warning(no_isolation_here) -> None:
    with pytest.warns(RuntimeWarning, match="WITHOUT isolation"), LocalSandbox() as sb:
        assert sb.isolation == "none"
        assert sb.execute("1").ok


def test_asked_level_that_is_unavailable_is_refused(no_isolation_here) -> None:
    with pytest.raises(IsolationUnavailableError, match=r"isolation='bwrap' is not available.*isolation='auto'"):
        LocalSandbox(isolation="bwrap").start()


def test_isolation_none_runs_plain_and_silently() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with LocalSandbox(isolation="none") as sb:
            assert sb.isolation == "none"
            assert sb.execute("import os\nsorted(os.environ)").ok


async def test_aisolation_none_runs_plain_and_silently() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with LocalSandbox(isolation="none") as sb:
            assert sb.isolation == "none"
            assert (await sb.aexecute("1")).ok


def test_unknown_isolation_option() -> None:
    with pytest.raises(ConfigurationError, match="isolation='strong' is not one of"):
        LocalSandbox(isolation="strong")  # type: ignore[arg-type]
