"""The host end of the driver protocol, independent of how bytes travel (pipes, E2B streams).

A transport gives the client a `write(bytes)` function that never blocks, and feeds it whatever arrives with
`feed(bytes)`, which never raises. The client reassembles lines under a size cap, checks every message, matches
replies to requests by id, and serves tool calls concurrently by the rule of `_tools.ToolCaller`. Whatever the
sandbox sends (a line that is not JSON, a message nested too deep, a tool call with wrong arguments), the reader
goes on: a malformed line is noted in the running execution's stderr, a failed tool call is an error for that call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import itertools
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from rlm_plugins.errors import (
    SandboxCancelledError,
    SandboxProtocolError,
    SandboxTerminatedError,
    SandboxTimeoutError,
)
from rlm_plugins.repl._tools import DaemonPool, ToolCaller
from rlm_plugins.repl._values import clean_text, safe_str
from rlm_plugins.repl.base import ExecResult, Tool, ToolCallRecord

DEFAULT_MAX_LINE_BYTES = 256 * 1024 * 1024
"""The largest message the host accepts from a sandbox; past it the sandbox is stopped."""
MAX_NOTES = 5
"""Malformed messages noted per execution; more are counted."""


class DriverClient:
    """Speaks the JSON-lines protocol to one driver process."""

    def __init__(
        self,
        write: Callable[[bytes], None],
        *,
        on_fatal: Callable[[], None],
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_tool_workers: int = 32,
    ) -> None:
        self._write = write
        self._on_fatal = on_fatal
        self.max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._ids = itertools.count(1)
        self._replies: dict[str, cf.Future] = {}
        self._lock = threading.Lock()
        self._tools: Mapping[str, Tool] = {}
        self._caller = ToolCaller()
        self._calls: list[ToolCallRecord] = []
        self._notes: list[str] = []
        self._running: str | None = None
        self._pool = DaemonPool(max_tool_workers, "rlm-tool")
        self._dead: BaseException | None = None
        self.stderr_tail = b""

    def send(self, msg: dict[str, Any]) -> None:
        self._write(json.dumps(msg, separators=(",", ":")).encode("utf-8", "replace") + b"\n")

    def request(self, msg: dict[str, Any]) -> cf.Future:
        """Send a request and return the future of its reply (ready, loaded, result, or error)."""
        rid = f"r{next(self._ids)}"
        fut: cf.Future = cf.Future()
        with self._lock:
            if self._dead is not None:
                raise self._dead
            self._replies[rid] = fut
        if msg.get("type") == "execute":
            self._running = rid
        try:
            self.send({**msg, "id": rid})
        except OSError as exc:
            self.fail(SandboxTerminatedError(f"could not write to the sandbox: {exc}"))
        return fut

    def call(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        """A request whose reply is awaited synchronously (hello, load, set)."""
        reply = self._wait(self.request(msg), timeout)
        return self._check_reply(reply)

    def result(self, fut: cf.Future, timeout: float) -> dict[str, Any]:
        """Wait for the reply of a request sent earlier with `request`."""
        return self._check_reply(self._wait(fut, timeout))

    async def acall(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        reply = await self._await(self.request(msg), timeout)
        return self._check_reply(reply)

    @staticmethod
    def _check_reply(reply: dict[str, Any]) -> dict[str, Any]:
        if reply.get("type") == "error":
            raise SandboxProtocolError(f"the sandbox refused the request: {safe_str(reply.get('error'))}")
        return reply

    def execute(self, code: str, tools: Mapping[str, Tool], timeout: float, grace: float) -> ExecResult:
        fut = self._start_execution(code, tools, timeout, ToolCaller())
        return self._finish_execution(self._wait(fut, timeout + grace, hang=True))

    async def aexecute(self, code: str, tools: Mapping[str, Tool], timeout: float, grace: float) -> ExecResult:
        fut = self._start_execution(code, tools, timeout, ToolCaller.here())
        return self._finish_execution(await self._await(fut, timeout + grace, hang=True))

    def _start_execution(self, code: str, tools: Mapping[str, Tool], timeout: float, caller: ToolCaller) -> cf.Future:
        self._tools, self._caller, self._calls, self._notes = dict(tools), caller, [], []
        return self.request({"type": "execute", "code": code, "timeout": timeout, "tools": sorted(self._tools)})

    def _finish_execution(self, reply: dict[str, Any]) -> ExecResult:
        self._running = None
        self._check_reply(reply)
        result = ExecResult.from_message(reply)
        result.tool_calls = self._calls
        if self._notes:
            result.stderr += "".join(f"\n[host] {note}" for note in self._notes)
        self._tools, self._caller = {}, ToolCaller()
        return result

    def cancel(self, grace: float) -> None:
        """Ask the driver to stop the running execution; kill the sandbox if it has not stopped `grace` s later."""
        rid = self._running
        if rid is None or self._dead is not None:
            return
        try:
            self.send({"type": "cancel", "id": rid})
        except OSError:
            pass
        timer = threading.Timer(grace, self._cancel_expired, args=(rid, grace))
        timer.daemon = True
        timer.start()

    def _cancel_expired(self, rid: str, grace: float) -> None:
        with self._lock:
            waiting = rid in self._replies
        if waiting:
            self.fail(
                SandboxCancelledError(
                    f"the code ignored the cancel for {grace:.1f}s; the sandbox was killed and its REPL state is lost"
                )
            )

    def _wait(self, fut: cf.Future, timeout: float, hang: bool = False) -> dict[str, Any]:
        try:
            return fut.result(timeout)
        except cf.TimeoutError:
            self._hung(timeout, hang)
            raise AssertionError("unreachable") from None

    async def _await(self, fut: cf.Future, timeout: float, hang: bool = False) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except asyncio.TimeoutError:
            self._hung(timeout, hang)
            raise AssertionError("unreachable") from None

    def _hung(self, waited: float, execution: bool) -> None:
        if execution:
            exc: BaseException = SandboxTimeoutError(
                f"the code ignored the interrupt and was still running after {waited:.1f}s; the sandbox was "
                "killed and its REPL state is lost"
            )
        else:
            exc = SandboxTerminatedError(f"the sandbox did not answer within {waited:.1f}s and was stopped")
        self.fail(exc)
        raise exc

    def feed(self, data: bytes) -> None:
        """Take bytes from the sandbox's protocol stream; complete lines are handled at once. Never raises."""
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            if self._buffer:
                self._buffer += data[start:end]
                line, self._buffer = bytes(self._buffer), bytearray()
            else:
                line = data[start:end]
            self.feed_line(line)
            start = end + 1
        if start < len(data):
            self._buffer += data[start:]
            if len(self._buffer) > self.max_line_bytes:
                self._buffer = bytearray()
                self.fail(SandboxProtocolError(self._oversize()))

    def _oversize(self) -> str:
        return (
            f"the sandbox sent a message larger than {self.max_line_bytes:,} bytes; it was stopped. Raise "
            "max_line_bytes if your tools really exchange values this large"
        )

    def feed_line(self, line: bytes) -> None:
        """Handle one complete protocol line (without its newline). Never raises."""
        if len(line) > self.max_line_bytes:
            self.fail(SandboxProtocolError(self._oversize()))
            return
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError) as exc:
            self._note(line, f"it is not JSON the host can read ({type(exc).__name__})")
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            self._note(line, "it has no type")
            return
        try:
            if msg["type"] == "tool_call":
                self._serve_tool_call(msg)
                return
            with self._lock:
                fut = self._replies.pop(str(msg.get("id")), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        except Exception as exc:  # the reader must survive any message; this one is dropped
            self._note(line, f"handling it failed ({type(exc).__name__}: {safe_str(exc)})")

    def _note(self, line: bytes, why: str) -> None:
        if len(self._notes) < MAX_NOTES:
            shown = clean_text(line[:120].decode("utf-8", "replace"))
            self._notes.append(f"ignored a malformed message from the sandbox ({why}): {shown!r}")

    def _serve_tool_call(self, msg: dict[str, Any]) -> None:
        call_id, name = msg.get("id"), msg.get("name")
        args, kwargs = msg.get("args", []), msg.get("kwargs", {})
        tool = self._tools.get(name) if isinstance(name, str) else None
        if tool is None or not isinstance(args, list) or not isinstance(kwargs, dict):
            self._reply_tool(call_id, None, f"no tool named {safe_str(name)!r} is available in this execution")
            return
        started = time.perf_counter()
        calls = self._calls

        def done(fut: cf.Future) -> None:
            value, error = _outcome(fut)
            calls.append(ToolCallRecord(str(name), time.perf_counter() - started, error))
            self._reply_tool(call_id, value, error)

        self._caller.submit(tool, args, kwargs, self._pool).add_done_callback(done)

    def _reply_tool(self, call_id: Any, value: Any, error: str | None) -> None:
        """Send a tool's outcome; a value that cannot be sent becomes that call's error. Never raises."""
        if error is None:
            try:
                line = json.dumps({"type": "tool_result", "id": call_id, "value": value}, separators=(",", ":"))
            except TypeError:
                line = json.dumps({"type": "tool_result", "id": call_id, "value": safe_str(value)})
            except (ValueError, RecursionError) as exc:
                error = f"its return value cannot be sent to the sandbox ({type(exc).__name__}: {safe_str(exc)})"
        if error is not None:
            line = json.dumps({"type": "tool_result", "id": call_id, "error": clean_text(error)}, separators=(",", ":"))
        try:
            self._write(line.encode("utf-8", "replace") + b"\n")
        except OSError:
            pass

    def fail(self, exc: BaseException) -> None:
        """The channel is dead: every waiter gets `exc`, and the transport is told to stop the sandbox."""
        with self._lock:
            first = self._dead is None
            if first:
                self._dead = exc
            waiting, self._replies = list(self._replies.values()), {}
        for fut in waiting:
            if not fut.done():
                fut.set_exception(exc)
        if first:
            self._on_fatal()

    @property
    def dead(self) -> BaseException | None:
        return self._dead

    def shutdown(self) -> None:
        """Forget the tools; calls still running finish on their daemon threads and their replies are dropped."""
        self._tools = {}


def _outcome(fut: cf.Future) -> tuple[Any, str | None]:
    try:
        return fut.result(), None
    except BaseException as exc:
        return None, f"{type(exc).__name__}: {safe_str(exc)}"
