"""The behaviour every sandbox backend promises, written once and run on each backend.

`SandboxContract` holds the tests. One subclass per backend supplies its sandboxes through the `new_sandbox` and
`isolation` fixtures: the local sandbox at every isolation level this machine offers (the `level` fixture; levels
that do not work here are skipped with the reason), the in-process sandbox, the e2b sandbox over the fake envd
(`make_e2b`, which also checks that no process is left), and the docker sandbox on a scratch image, on Docker
(`make_docker`, which also checks that no container is left) and on rootful Podman. `OutOfProcessContract` adds
what only a sandbox in another process can promise: `os._exit` in the in-process sandbox would end the test run
itself.

Each behaviour is tested through `execute` and, in its twin, through `aexecute`. What one backend alone does
(isolation, process lifecycle and reaping, in-process threads, e2b streams and uploads) is tested in its own file.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Callable, Iterator

import pytest

from rlm_plugins.errors import (
    ConfigurationError,
    SandboxClosedError,
    SandboxError,
    SandboxTerminatedError,
    SandboxTimeoutError,
)
from rlm_plugins.repl import create_sandbox
from rlm_plugins.repl.base import BaseSandbox
from tests.unit_tests.repl import _contract as c


def _closing(kind: str, **fixed: object) -> Iterator[Callable[..., BaseSandbox]]:
    """A `new_sandbox` factory of `kind`; every sandbox it made is closed at teardown."""
    made: list[BaseSandbox] = []

    def build(**options: object) -> BaseSandbox:
        made.append(create_sandbox(kind, **fixed, **options))
        return made[-1]

    yield build
    for sandbox in made:
        sandbox.close()


class SandboxContract:
    """The tests every backend passes; a subclass sets `kind` and overrides the two fixtures below."""

    kind = ""

    @pytest.fixture
    def new_sandbox(self) -> Callable[..., BaseSandbox]:
        """`new_sandbox(**options)`: a new, unstarted sandbox of this backend."""
        raise NotImplementedError

    @pytest.fixture
    def isolation(self) -> str:
        """What the backend's sandboxes report as `isolation`."""
        raise NotImplementedError

    @pytest.fixture
    def sandbox(self, new_sandbox):
        with new_sandbox(grace=c.GRACE) as sb:
            yield sb

    @pytest.fixture
    async def asandbox(self, new_sandbox):
        async with new_sandbox(grace=c.GRACE) as sb:
            yield sb

    def test_execute_keeps_one_namespace(self, sandbox, isolation: str) -> None:
        assert (sandbox.kind, sandbox.isolation) == (self.kind, isolation)
        assert sandbox.execute("import os\nx = 1\npid = os.getpid()").ok
        assert sandbox.execute("x += 1").ok
        result = sandbox.execute("print('x is', os.getpid() == pid)\nx")
        assert (result.stdout, result.value) == ("x is True\n2\n", 2)

    async def test_aexecute_keeps_one_namespace(self, asandbox, isolation: str) -> None:
        assert (asandbox.kind, asandbox.isolation) == (self.kind, isolation)
        assert (await asandbox.aexecute("import os\nx = 1\npid = os.getpid()")).ok
        assert (await asandbox.aexecute("x += 1")).ok
        result = await asandbox.aexecute("print('x is', os.getpid() == pid)\nx")
        assert (result.stdout, result.value) == ("x is True\n2\n", 2)

    def test_execute_final_answers(self, new_sandbox) -> None:
        with new_sandbox(final_fields=["answer"]) as sb:
            final = sb.execute("FINAL([1, 2])\nnever = 1")
            c.check_final_answers(final, sb.execute("SUBMIT()"), sb.execute("SUBMIT(answer='a')"))

    async def test_aexecute_final_answers(self, new_sandbox) -> None:
        async with new_sandbox(final_fields=["answer"]) as sb:
            final = await sb.aexecute("FINAL([1, 2])\nnever = 1")
            c.check_final_answers(final, await sb.aexecute("SUBMIT()"), await sb.aexecute("SUBMIT(answer='a')"))

    def test_execute_syntax_error_is_distinguishable(self, sandbox) -> None:
        assert sandbox.execute("def f(:").error.is_syntax_error
        assert not sandbox.execute("1 / 0").error.is_syntax_error

    async def test_aexecute_syntax_error_is_distinguishable(self, asandbox) -> None:
        assert (await asandbox.aexecute("def f(:")).error.is_syntax_error
        assert not (await asandbox.aexecute("1 / 0")).error.is_syntax_error

    def test_load_values(self, new_sandbox, tmp_path) -> None:
        sandbox = new_sandbox()  # the first load starts it
        for name, value, expr, shown, (kind, length) in c.LOADS:
            assert sandbox.load(name, value) == {"type": kind, "length": length}, name
            assert sandbox.execute(expr).stdout == shown + "\n", name
        text, data = c.context_files(tmp_path)
        infos = sandbox.load("text", text), sandbox.load("mapped", text, format="mmap"), sandbox.load("data", data)
        c.check_path_loads(*infos, sandbox.execute(c.PATH_CHECK).stdout)

    async def test_aload_values(self, new_sandbox, tmp_path) -> None:
        asandbox = new_sandbox()  # the first aload starts it
        for name, value, expr, shown, (kind, length) in c.LOADS:
            assert await asandbox.aload(name, value) == {"type": kind, "length": length}, name
            assert (await asandbox.aexecute(expr)).stdout == shown + "\n", name
        text, data = c.context_files(tmp_path)
        infos = (
            await asandbox.aload("text", text),
            await asandbox.aload("mapped", text, format="mmap"),
            await asandbox.aload("data", data),
        )
        c.check_path_loads(*infos, (await asandbox.aexecute(c.PATH_CHECK)).stdout)
        await asandbox.aclose()

    def test_load_rejects_a_bad_name(self, new_sandbox) -> None:
        sandbox = new_sandbox()
        with pytest.raises(ConfigurationError, match="must be a Python identifier"):
            sandbox.load("not a name", "x")
        assert sandbox.execute("1").ok

    async def test_aload_rejects_a_bad_name(self, new_sandbox) -> None:
        asandbox = new_sandbox()
        with pytest.raises(ConfigurationError, match="must be a Python identifier"):
            await asandbox.aload("not a name", "x")
        assert (await asandbox.aexecute("1")).ok
        await asandbox.aclose()

    def test_load_of_a_missing_file_is_a_configuration_error(self, new_sandbox, tmp_path) -> None:
        sandbox = new_sandbox()
        with pytest.raises(ConfigurationError, match="cannot read the context file"):
            sandbox.load("context", tmp_path / "missing.txt")
        assert sandbox.execute("1").ok

    async def test_aload_of_a_missing_file_is_a_configuration_error(self, new_sandbox, tmp_path) -> None:
        asandbox = new_sandbox()
        with pytest.raises(ConfigurationError, match="cannot read the context file"):
            await asandbox.aload("context", tmp_path / "missing.txt")
        assert (await asandbox.aexecute("1")).ok
        await asandbox.aclose()

    def test_non_utf8_bytes_do_not_break_the_channel(self, sandbox, tmp_path) -> None:
        sandbox.load("raw", c.NON_UTF8_RAW)
        sandbox.load("text", c.non_utf8_file(tmp_path))
        c.check_non_utf8(sandbox.execute(c.NON_UTF8), sandbox.execute("'still fine'"))

    async def test_anon_utf8_bytes_do_not_break_the_channel(self, asandbox, tmp_path) -> None:
        await asandbox.aload("raw", c.NON_UTF8_RAW)
        await asandbox.aload("text", c.non_utf8_file(tmp_path))
        c.check_non_utf8(await asandbox.aexecute(c.NON_UTF8), await asandbox.aexecute("'still fine'"))

    def test_execute_serves_concurrent_tool_calls_by_id(self, sandbox) -> None:
        overlap = c.Overlap()
        result = sandbox.execute(c.THREADS.format(tool="slow_double"), tools={"slow_double": c.slow_double(overlap)})
        c.check_concurrent(result, overlap, [2 * i for i in range(16)])

    async def test_aexecute_serves_concurrent_tool_calls_by_id(self, asandbox) -> None:
        overlap = c.Overlap()
        tools = {"slow_double": c.slow_double(overlap)}
        result = await asandbox.aexecute(c.THREADS.format(tool="slow_double"), tools=tools)
        c.check_concurrent(result, overlap, [2 * i for i in range(16)])

    def test_execute_runs_async_tools_too(self, sandbox) -> None:
        overlap = c.Overlap()

        async def slow_inc(x: int) -> int:
            with overlap:
                await asyncio.sleep(0.2)
            return x + 1

        result = sandbox.execute(c.THREADS.format(tool="slow_inc"), tools={"slow_inc": slow_inc})
        c.check_concurrent(result, overlap, [i + 1 for i in range(16)])

    async def test_aexecute_runs_async_tools_on_the_callers_loop(self, asandbox) -> None:
        loops = set()
        overlap = c.Overlap()

        async def slow_inc(x: int) -> int:
            loops.add(asyncio.get_running_loop())
            with overlap:
                await asyncio.sleep(0.2)
            return x + 1

        result = await asandbox.aexecute(c.THREADS.format(tool="slow_inc"), tools={"slow_inc": slow_inc})
        c.check_concurrent(result, overlap, [i + 1 for i in range(16)])
        assert loops == {asyncio.get_running_loop()}

    def test_execute_tool_errors_reach_user_code(self, sandbox) -> None:
        c.check_tool_error(sandbox.execute(c.TOOL_ERROR, tools={"failing_tool": c.failing_tool}))

    async def test_aexecute_tool_errors_reach_user_code(self, asandbox) -> None:
        c.check_tool_error(await asandbox.aexecute(c.TOOL_ERROR, tools={"failing_tool": c.failing_tool}))

    def test_execute_timeout_interrupts_and_next_execution_works(self, sandbox) -> None:
        c.check_timeout(sandbox.execute("kept = 1\n" + c.SPIN, timeout=c.TIMEOUT), sandbox.execute("kept"))

    async def test_aexecute_timeout_interrupts_and_next_execution_works(self, asandbox) -> None:
        result = await asandbox.aexecute("kept = 1\n" + c.SPIN, timeout=c.TIMEOUT)
        c.check_timeout(result, await asandbox.aexecute("kept"))

    def test_execute_huge_print_is_truncated_inside_the_sandbox(self, sandbox) -> None:
        c.check_huge(sandbox.execute(c.HUGE), sandbox.execute("'next'"))

    async def test_aexecute_huge_print_is_truncated_inside_the_sandbox(self, asandbox) -> None:
        c.check_huge(await asandbox.aexecute(c.HUGE), await asandbox.aexecute("'next'"))

    def test_execute_refuses_a_second_concurrent_execution(self, sandbox) -> None:
        running, release = threading.Event(), threading.Event()

        def hold() -> None:  # keeps the first execution running until the second one has been refused
            running.set()
            release.wait(10)

        first = threading.Thread(target=sandbox.execute, args=("hold()", {"hold": hold}))
        first.start()
        try:
            assert running.wait(10)
            with pytest.raises(SandboxError, match="already running code"):
                sandbox.execute("1")
        finally:
            release.set()
            first.join()
        assert sandbox.execute("1").ok

    async def test_aexecute_refuses_a_second_concurrent_execution(self, asandbox) -> None:
        running, release = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            running.set()
            await release.wait()

        first = asyncio.ensure_future(asandbox.aexecute("hold()", tools={"hold": hold}))
        try:
            await asyncio.wait_for(running.wait(), 10)
            with pytest.raises(SandboxError, match="already running code"):
                await asandbox.aexecute("1")
        finally:
            release.set()
        assert (await first).ok

    def test_closed_sandbox_refuses_work(self, new_sandbox) -> None:
        with new_sandbox() as sb:
            assert sb.execute("1 + 1").value == 2
        sb.close()  # a second close is a no-op
        with pytest.raises(SandboxClosedError):
            sb.execute("1")
        with pytest.raises(SandboxClosedError):
            sb.start()

    async def test_aclosed_sandbox_refuses_work(self, new_sandbox) -> None:
        async with new_sandbox() as sb:
            assert (await sb.aexecute("1 + 1")).value == 2
        await sb.aclose()
        with pytest.raises(SandboxClosedError):
            await sb.aexecute("1")
        with pytest.raises(SandboxClosedError):
            await sb.astart()


class OutOfProcessContract:
    """What a sandbox whose code runs in another process promises on top of `SandboxContract`."""

    def test_execute_os_exit_is_a_terminal_error(self, sandbox) -> None:
        with pytest.raises(SandboxTerminatedError, match="exited with code 3; its REPL state is lost") as info:
            sandbox.execute("import os\nos._exit(3)")
        assert not isinstance(info.value, SandboxTimeoutError)
        with pytest.raises(SandboxTerminatedError, match="exited with code 3"):
            sandbox.execute("1")

    async def test_aexecute_os_exit_is_a_terminal_error(self, asandbox) -> None:
        with pytest.raises(SandboxTerminatedError, match="exited with code 3; its REPL state is lost") as info:
            await asandbox.aexecute("import os\nos._exit(3)")
        assert not isinstance(info.value, SandboxTimeoutError)
        with pytest.raises(SandboxTerminatedError, match="exited with code 3"):
            await asandbox.aexecute("1")


class TestLocalSandbox(SandboxContract, OutOfProcessContract):
    kind = "local"

    @pytest.fixture
    def new_sandbox(self, level: str) -> Iterator[Callable[..., BaseSandbox]]:
        yield from _closing("local", isolation=level)

    @pytest.fixture
    def isolation(self, level: str) -> str:
        return level


class TestInProcessSandbox(SandboxContract):
    kind = "inprocess"

    @pytest.fixture
    def new_sandbox(self) -> Iterator[Callable[..., BaseSandbox]]:
        yield from _closing("inprocess")

    @pytest.fixture
    def isolation(self) -> str:
        return "none"


@pytest.mark.skipif(importlib.util.find_spec("e2b") is None, reason="the E2B SDK is not installed: pip install e2b")
@pytest.mark.filterwarnings("ignore:E2BSandbox uploads the driver")
class TestE2BSandbox(SandboxContract, OutOfProcessContract):
    kind = "e2b"

    @pytest.fixture
    def new_sandbox(self, make_e2b) -> Callable[..., BaseSandbox]:
        return make_e2b

    @pytest.fixture
    def isolation(self) -> str:
        return "vm"


class TestDockerSandbox(SandboxContract, OutOfProcessContract):
    kind = "docker"

    @pytest.fixture
    def new_sandbox(self, make_docker) -> Callable[..., BaseSandbox]:
        return make_docker

    @pytest.fixture
    def isolation(self) -> str:
        return "container"


class TestPodmanSandbox(SandboxContract, OutOfProcessContract):
    kind = "docker"

    @pytest.fixture
    def new_sandbox(self, podman_options) -> Iterator[Callable[..., BaseSandbox]]:
        yield from _closing("docker", **podman_options)

    @pytest.fixture
    def isolation(self) -> str:
        return "container"
