"""The `inprocess` sandbox: REPL code runs inside the host process. Fast, and NOT isolated.

Use it for debugging and for trusted code only: model-written code can read and change anything the host
process can. `isolation` is always "none". Code runs on a worker thread of its own; prints from that thread are
captured, prints from threads the code starts go to the host's stdout. A timeout interrupts the code between
bytecodes; code stuck inside a C call cannot be killed, so the sandbox is then marked dead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import ctypes
import inspect
import pathlib
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from rlm_plugins.errors import ConfigurationError, SandboxClosedError, SandboxTimeoutError
from rlm_plugins.repl import driver
from rlm_plugins.repl.base import BaseSandbox, ExecResult, Format, Tool, ToolCallRecord, infer_format

_local = threading.local()


class _ThreadRouter:
    """Stands in for sys.stdout/sys.stderr: writes from a sandbox thread go to its capture, others pass through."""

    def __init__(self, fallback: Any, slot: int) -> None:
        self.fallback = fallback
        self.slot = slot

    def write(self, text: str) -> int:
        captures = getattr(_local, "captures", None)
        target = captures[self.slot] if captures else self.fallback
        return target.write(text)

    def flush(self) -> None:
        if not getattr(_local, "captures", None):
            self.fallback.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


_router_lock = threading.Lock()


def _install_router() -> None:
    with _router_lock:
        if not isinstance(sys.stdout, _ThreadRouter):
            sys.stdout = _ThreadRouter(sys.stdout, 0)
        if not isinstance(sys.stderr, _ThreadRouter):
            sys.stderr = _ThreadRouter(sys.stderr, 1)


class _Redirect:
    def __init__(self, out: driver.Capture, err: driver.Capture) -> None:
        self.captures = (out, err)

    def __enter__(self) -> None:
        _local.captures = self.captures

    def __exit__(self, *exc: object) -> None:
        _local.captures = None


class InProcessSandbox(BaseSandbox):
    """Runs REPL code in this process, on a worker thread: no isolation at all.

    Examples:
        >>> with InProcessSandbox() as sb:
        ...     sb.load("context", [1, 2, 3])
        ...     sb.execute("sum(context)").stdout
        '6\\n'
    """

    kind = "inprocess"
    isolation = "none"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._session: driver.Session | None = None
        self._worker: cf.ThreadPoolExecutor | None = None
        self._thread_id: int | None = None
        self._tools: Mapping[str, Tool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._calls: list[ToolCallRecord] = []
        self._closed = False
        self._dead: BaseException | None = None

    def start(self) -> None:
        if self._closed:
            raise SandboxClosedError("this sandbox was closed; create a new one")
        if self._session is None:
            _install_router()
            self._session = driver.Session(self._call_tool, self.max_output_chars, self.final_fields)
            self._worker = cf.ThreadPoolExecutor(1, thread_name_prefix="rlm-inprocess")

    def _ready(self) -> driver.Session:
        if self._closed:
            raise SandboxClosedError("this sandbox was closed; create a new one")
        if self._dead is not None:
            raise self._dead
        self.start()
        assert self._session is not None
        return self._session

    def load(self, name: str, value: Any, format: Format | None = None) -> dict[str, Any]:
        session = self._ready()
        if not str(name).isidentifier():
            raise ConfigurationError(f"cannot load into {name!r}: the name must be a Python identifier")
        fmt = infer_format(value, format)
        if isinstance(value, pathlib.Path):
            try:
                value = driver.read_value(str(value), fmt)
            except OSError as exc:
                raise ConfigurationError(f"cannot read the context file {str(value)!r}: {exc.strerror}") from exc
        elif fmt == "mmap":
            raise ConfigurationError("format='mmap' needs a pathlib.Path value")
        return session.set_value(name, value)

    def _call_tool(self, name: str, args: list, kwargs: dict) -> Any:
        tool = self._tools.get(name)
        if tool is None:
            raise driver.ToolError(f"no tool named {name!r} is available in this execution")
        started = time.perf_counter()
        error = None
        try:
            if inspect.iscoroutinefunction(tool) and self._loop is not None:
                return asyncio.run_coroutine_threadsafe(tool(*args, **kwargs), self._loop).result()
            result = tool(*args, **kwargs)
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
            return result
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise driver.ToolError(f"{name} failed: {error}") from None
        finally:
            self._calls.append(ToolCallRecord(name, time.perf_counter() - started, error))

    def _run(self, code: str) -> dict[str, Any]:
        self._thread_id = threading.get_ident()
        assert self._session is not None
        return self._session.run(code, _Redirect)

    def _submit(self, session: driver.Session, code: str, tools: Mapping[str, Tool] | None, loop: Any) -> cf.Future:
        self._tools, self._loop, self._calls = dict(tools or {}), loop, []
        session.bind_tools(list(self._tools))
        _install_router()  # again: the host may have replaced sys.stdout since start() (pytest, Jupyter, redirects)
        assert self._worker is not None
        return self._worker.submit(self._run, code)

    def _interrupt(self) -> None:
        if self._thread_id is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self._thread_id), ctypes.py_object(driver._Interrupted)
            )

    def _finish(self, fut: cf.Future, timeout: float) -> ExecResult:
        try:
            if not fut.done():
                raise SandboxTimeoutError(
                    f"the code ignored the interrupt for {self.grace:.1f}s after its {timeout:.1f}s timeout; this "
                    "in-process sandbox cannot kill it and is now unusable"
                )
            msg = fut.result()
            msg["timed_out"] = msg.pop("interrupted", False)
            result = ExecResult.from_message(msg)
            result.tool_calls = self._calls
            return result
        except SandboxTimeoutError as exc:
            self._dead = exc
            raise

    def execute(self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None) -> ExecResult:
        limit = timeout or self.timeout
        session = self._ready()
        with self._one_execution():
            fut = self._submit(session, code, tools, None)
            try:
                fut.result(limit)
            except cf.TimeoutError:
                self._interrupt()
                cf.wait([fut], self.grace)
            return self._finish(fut, limit)

    async def aexecute(
        self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None
    ) -> ExecResult:
        limit = timeout or self.timeout
        session = self._ready()
        with self._one_execution():
            fut = self._submit(session, code, tools, asyncio.get_running_loop())
            wrapped = asyncio.wrap_future(fut)
            done, _ = await asyncio.wait([wrapped], timeout=limit)
            if not done:
                self._interrupt()
                await asyncio.wait([wrapped], timeout=self.grace)
            return self._finish(fut, limit)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)
        self._session = None


async def _await(awaitable: Any) -> Any:
    return await awaitable
