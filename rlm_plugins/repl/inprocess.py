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
import functools
import pathlib
import queue
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from rlm_plugins.errors import ConfigurationError, SandboxCancelledError, SandboxClosedError, SandboxTimeoutError
from rlm_plugins.repl import driver
from rlm_plugins.repl._tools import ToolCaller
from rlm_plugins.repl._values import safe_str
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
    """Routes the worker's prints into the captures and marks the span in which an interrupt may land."""

    def __init__(self, sandbox: InProcessSandbox, out: driver.Capture, err: driver.Capture) -> None:
        self.sandbox = sandbox
        self.captures = (out, err)

    def __enter__(self) -> None:
        _local.captures = self.captures
        self.sandbox._enter_cell()

    def __exit__(self, *exc: object) -> None:
        try:
            self.sandbox._leave_cell()
        except driver._Interrupted:  # it landed on the way out, before the lock was taken: the cell is over
            self.sandbox._leave_cell()
        _local.captures = None


class _Cell:
    """One execution handed to the worker: its code, its outcome, and why it was stopped, if it was."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.done: cf.Future = cf.Future()
        self.stop: str | None = None


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
        self._jobs: queue.SimpleQueue[_Cell | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._thread_id: int | None = None
        self._cell: _Cell | None = None
        self._in_cell = False
        self._cell_lock = threading.Lock()
        self._tools: Mapping[str, Tool] = {}
        self._caller = ToolCaller()
        self._calls: list[ToolCallRecord] = []
        self._closed = False
        self._dead: BaseException | None = None

    def start(self) -> None:
        if self._closed:
            raise SandboxClosedError("this sandbox was closed; create a new one")
        if self._session is None:
            _install_router()
            self._session = driver.Session(self._call_tool, self.max_output_chars, self.final_fields)
            self._worker = threading.Thread(target=self._serve, name="rlm-inprocess", daemon=True)
            self._worker.start()

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
            return self._caller.call(tool, args, kwargs)
        except Exception as exc:
            error = f"{type(exc).__name__}: {safe_str(exc)}"
            raise driver.ToolError(f"{name} failed: {error}") from None
        finally:
            self._calls.append(ToolCallRecord(name, time.perf_counter() - started, error))

    def _serve(self) -> None:
        """The worker: runs cells one at a time; an interrupt that lands after its cell is over cannot end it."""
        self._thread_id = threading.get_ident()
        while True:
            cell = None
            try:
                cell = self._jobs.get()
                if cell is None:
                    return
                assert self._session is not None
                _settle(cell.done, self._session.run(cell.code, functools.partial(_Redirect, self)))
            except driver._Stop:
                if cell is not None:
                    _settle(cell.done, {"interrupted": True})
            except BaseException as exc:  # the host's side of a cell failed: that execution raises it
                if cell is not None and not cell.done.done():
                    cell.done.set_exception(exc)

    def _enter_cell(self) -> None:
        with self._cell_lock:
            self._in_cell = True

    def _leave_cell(self) -> None:
        with self._cell_lock:
            self._in_cell = False
            if self._thread_id is not None:  # drop an interrupt that was sent but has not landed yet
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id), None)

    def _interrupt(self, cell: _Cell, reason: str) -> None:
        """Raise the interrupt in the worker, only while it runs `cell`'s user code."""
        with self._cell_lock:
            if self._cell is cell and self._in_cell and cell.stop is None and self._thread_id is not None:
                cell.stop = reason
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread_id), ctypes.py_object(driver._Interrupted)
                )

    def _submit(
        self, session: driver.Session, code: str, tools: Mapping[str, Tool] | None, caller: ToolCaller
    ) -> _Cell:
        self._tools, self._caller, self._calls = dict(tools or {}), caller, []
        session.bind_tools(list(self._tools))
        _install_router()  # again: the host may have replaced sys.stdout since start() (pytest, Jupyter, redirects)
        cell = self._cell = _Cell(code)
        self._jobs.put(cell)
        return cell

    def _finish(self, cell: _Cell, timeout: float) -> ExecResult:
        if not cell.done.done():
            self._dead = SandboxTimeoutError(
                f"the code ignored the interrupt for {self.grace:.1f}s after its {timeout:.1f}s timeout; this "
                "in-process sandbox cannot kill it and is now unusable"
            )
            raise self._dead
        msg = dict(cell.done.result())
        interrupted = msg.pop("interrupted", False)
        msg["timed_out"] = interrupted and cell.stop != "cancelled"
        msg["cancelled"] = interrupted and cell.stop == "cancelled"
        result = ExecResult.from_message(msg)
        result.tool_calls = self._calls
        return result

    def execute(self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None) -> ExecResult:
        limit = timeout or self.timeout
        session = self._ready()
        with self._one_execution():
            cell = self._submit(session, code, tools, ToolCaller())
            if not _wait(cell.done, limit):
                self._interrupt(cell, "timeout")
                _wait(cell.done, self.grace)
            return self._finish(cell, limit)

    async def aexecute(
        self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None
    ) -> ExecResult:
        limit = timeout or self.timeout
        session = self._ready()
        with self._one_execution():
            cell = self._submit(session, code, tools, ToolCaller.here())
            wrapped = asyncio.wrap_future(cell.done)
            done, _ = await asyncio.wait([wrapped], timeout=limit)
            if not done:
                self._interrupt(cell, "timeout")
                await asyncio.wait([wrapped], timeout=self.grace)
            return self._finish(cell, limit)

    def cancel(self) -> None:
        cell = self._cell
        if cell is None or cell.done.done():
            return
        self._interrupt(cell, "cancelled")
        timer = threading.Timer(self.grace, self._cancel_expired, args=(cell,))
        timer.daemon = True
        timer.start()

    def _cancel_expired(self, cell: _Cell) -> None:
        if cell.done.done():
            return
        self._dead = SandboxCancelledError(
            f"the code ignored the cancel for {self.grace:.1f}s; this in-process sandbox cannot kill it and is "
            "now unusable"
        )
        if not cell.done.done():
            try:
                cell.done.set_exception(self._dead)
            except cf.InvalidStateError:
                pass

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            self._jobs.put(None)
        self._session = None


def _wait(fut: cf.Future, timeout: float) -> bool:
    """Whether `fut` finished (with a result or an error) within `timeout` seconds."""
    try:
        fut.exception(timeout)
    except cf.TimeoutError:
        return False
    return True


def _settle(fut: cf.Future, value: Any) -> None:
    try:
        fut.set_result(value)
    except cf.InvalidStateError:  # the cell was given up on (cancelled and declared dead) meanwhile
        pass
