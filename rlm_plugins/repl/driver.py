"""The REPL driver that runs inside every sandbox: stdlib only, Python >= 3.9, no imports from rlm_plugins.

Run as ``python driver.py``. It speaks one JSON object per line: requests arrive on stdin, replies leave on a
private duplicate of fd 1. Before any user code runs, fd 0 is pointed at /dev/null and fd 1 at fd 2, so user
prints, ``os.write(1, ...)`` and child processes can never write into the channel or read from it.

The same `Session` class also backs the in-process sandbox, which imports this file as a module.

host -> driver: hello, load, set, execute, tool_result, cancel, shutdown
driver -> host: ready, loaded, tool_call, result, error
"""

from __future__ import annotations

import ast
import collections
import json
import linecache
import mmap
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable

PROTOCOL_VERSION = 1
DEFAULT_MAX_OUTPUT_CHARS = 10_000
FINAL_NAMES = ("FINAL", "FINAL_VAR", "SUBMIT", "SHOW_VARS")
ANSWER = "answer"
"""The official `rlms` 0.1.3 protocol: a cell setting `answer["ready"] = True` ends the run with `answer["content"]`."""


class _Stop(BaseException):
    """Raised inside user code to end an execution (final answer, timeout, cancel).

    A BaseException, so a user's ``except Exception`` cannot swallow it.
    """


class _FinalAnswer(_Stop):
    pass


class _Interrupted(_Stop):
    pass


class ToolError(RuntimeError):
    """A host tool failed; raised inside user code with the host's message."""


class Capture:
    """A text stream that keeps the first `limit` characters and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.kept = 0
        self.cut = 0
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        n = len(text)
        with self._lock:
            room = self.limit - self.kept
            if room >= n:
                self.parts.append(text)
                self.kept += n
            else:
                if room > 0:
                    self.parts.append(text[:room])
                    self.kept += room
                self.cut += n - max(room, 0)
        return n

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:
        return "utf-8"

    def getvalue(self) -> str:
        text = "".join(self.parts)
        if self.cut:
            text += f"\n... [output truncated: {self.cut:,} more characters not shown]"
        return text


MAX_DEPTH = 200
"""How deeply a value sent to the host may nest."""
_INT_BITS = 10_000
"""Ints longer than this many bits are checked against Python's int-to-str digit limit before they are sent."""


def to_jsonable(value: Any, depth: int = 0, seen: Any = None) -> Any:
    """Convert a value to something json.dumps accepts, falling back to str() for unknown types.

    Raises:
        ValueError: the value contains itself, nests deeper than MAX_DEPTH, or holds an int too long to convert.
    """
    if value is None or isinstance(value, (bool, float, str)):
        return value
    if isinstance(value, int):
        if value.bit_length() > _INT_BITS:
            repr(value)  # raises Python's own ValueError past sys.get_int_max_str_digits()
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        seen = set() if seen is None else seen
        if id(value) in seen:
            raise ValueError(f"the {type(value).__name__} contains itself; pass a value without cycles")
        if depth >= MAX_DEPTH:
            raise ValueError(f"the value nests deeper than {MAX_DEPTH} levels; flatten it or pass str(value)")
        seen.add(id(value))
        try:
            if isinstance(value, dict):
                return {str(k): to_jsonable(v, depth + 1, seen) for k, v in value.items()}
            return [to_jsonable(v, depth + 1, seen) for v in value]
        finally:
            seen.discard(id(value))
    return str(value)


def describe(value: Any) -> dict:
    """Type and size of a value, for SHOW_VARS and load replies."""
    info: dict = {"type": type(value).__name__}
    try:
        info["length"] = len(value)
    except TypeError:
        pass
    return info


def read_value(fileobj_or_fd: Any, fmt: str) -> Any:
    """Load a value from an open file descriptor or a path, in format text, json, bytes or mmap."""
    if fmt not in ("text", "json", "bytes", "mmap"):
        raise ValueError(f"unknown format {fmt!r}; use text, json, bytes or mmap")
    fd = fileobj_or_fd if isinstance(fileobj_or_fd, int) else os.open(fileobj_or_fd, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return {"text": "", "bytes": b"", "mmap": b"", "json": None}[fmt]
        mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        if fmt == "mmap":
            return mm
        try:
            if fmt == "bytes":
                return mm[:]
            if fmt == "json":
                return json.loads(str(mm, "utf-8", "replace"))
            return str(mm, "utf-8", "replace")
        finally:
            mm.close()
    finally:
        os.close(fd)


class Session:
    """One REPL namespace and everything needed to run code in it.

    `call_tool(name, args, kwargs)` is how user code reaches the host; the subprocess driver sends a message,
    the in-process sandbox calls the host function directly.
    """

    def __init__(
        self,
        call_tool: Callable[[str, list, dict], Any],
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        final_fields: list[str] | None = None,
    ) -> None:
        self.call_tool = call_tool
        self.max_output_chars = max_output_chars
        self.final_fields = final_fields
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
        self.tool_names: set[str] = set()
        self.cells = 0
        self._final: dict | None = None
        self._final_lock = threading.Lock()
        self._install_builtins()

    def configure(self, max_output_chars: int | None = None, final_fields: list[str] | None = None) -> None:
        if max_output_chars is not None:
            self.max_output_chars = int(max_output_chars)
        if final_fields is not None:
            self.final_fields = list(final_fields) or None

    def _install_builtins(self) -> None:
        ns = self.namespace
        ns["FINAL"] = self._final_value
        ns["FINAL_VAR"] = self._final_var
        ns["SUBMIT"] = self._submit
        ns["SHOW_VARS"] = self._show_vars
        ns[ANSWER] = {"content": "", "ready": False}

    def _answer_ready(self) -> None:
        """Take `answer["content"]` as the final answer once a cell set `answer["ready"]` (FINAL's mode only)."""
        answer = self.namespace.get(ANSWER)
        if self._final is None and self.final_fields is None and isinstance(answer, dict) and answer.get("ready"):
            self._final = {"value": to_jsonable(answer.get("content"))}
            self.namespace[ANSWER] = {"content": "", "ready": False}

    def _finish(self, payload: dict) -> None:
        with self._final_lock:
            if self._final is None:
                self._final = payload
        raise _FinalAnswer()

    def _final_value(self, value: Any) -> None:
        """End the run with `value` as the answer."""
        self._finish({"value": to_jsonable(value)})

    def _final_var(self, name: Any) -> None:
        """End the run with the value of the REPL variable `name` as the answer."""
        key = str(name).strip().strip("'\"")
        if key not in self.namespace:
            known = ", ".join(self.user_variables()) or "none"
            raise NameError(f"FINAL_VAR({key!r}): no such variable. Variables you have defined: {known}")
        self._finish({"value": to_jsonable(self.namespace[key])})

    def _submit(self, *args: Any, **kwargs: Any) -> None:
        """End the run with the output fields, as keyword arguments (or positionally, in field order)."""
        fields = self.final_fields
        if fields is None:
            if args or not kwargs:
                raise TypeError("SUBMIT takes keyword arguments only, e.g. SUBMIT(answer=...); or call FINAL(value)")
            only = next(iter(kwargs.values())) if len(kwargs) == 1 else kwargs
            self._finish({"value": to_jsonable(only), "fields": to_jsonable(kwargs)})
        if len(args) > len(fields):
            raise TypeError(f"SUBMIT takes at most {len(fields)} positional arguments ({', '.join(fields)})")
        values = dict(zip(fields, args))
        for key, val in kwargs.items():
            if key in values:
                raise TypeError(f"SUBMIT got two values for {key!r}")
            values[key] = val
        unknown = [k for k in values if k not in fields]
        missing = [k for k in fields if k not in values]
        if unknown or missing:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(missing))
            if unknown:
                parts.append("unknown " + ", ".join(unknown))
            raise TypeError(f"SUBMIT({', '.join(f + '=...' for f in fields)}): " + "; ".join(parts))
        self._finish({"value": None, "fields": to_jsonable(values)})

    def user_variables(self) -> dict[str, dict]:
        hidden = set(FINAL_NAMES) | self.tool_names
        out = {}
        for name, value in self.namespace.items():
            if name.startswith("_") or name in hidden or type(value).__name__ == "module":
                continue
            if name == ANSWER and isinstance(value, dict) and set(value) == {"content", "ready"}:
                continue
            out[name] = describe(value)
        return out

    def _show_vars(self) -> str:
        """A table of the variables you defined: name, type, length."""
        rows = [
            f"{name}: {info['type']}" + (f" (len {info['length']:,})" if "length" in info else "")
            for name, info in self.user_variables().items()
        ]
        return "\n".join(rows) if rows else "(no variables yet)"

    def bind_tools(self, names: list[str]) -> None:
        """Make each host tool callable by name from user code."""
        for name in names:
            if name in FINAL_NAMES or not str(name).isidentifier():
                continue
            self.namespace[name] = self._make_tool(name)
            self.tool_names.add(name)

    def _make_tool(self, name: str) -> Callable[..., Any]:
        def tool(*args: Any, **kwargs: Any) -> Any:
            return self.call_tool(name, list(args), kwargs)

        tool.__name__ = tool.__qualname__ = name
        return tool

    def set_value(self, name: str, value: Any) -> dict:
        self.namespace[name] = value
        return describe(value)

    def run(self, code: str, redirect: Callable[[Capture, Capture], Any]) -> dict:
        """Run one cell. `redirect(out, err)` is a context manager that routes prints into the captures."""
        self.cells += 1
        self._final = None
        out, err = Capture(self.max_output_chars), Capture(self.max_output_chars)
        filename = f"<cell {self.cells}>"
        start = time.perf_counter()
        error = None
        interrupted = False
        value = None
        if not isinstance(code, str):
            code = "" if code is None else str(code)
        try:
            body, last = self._compile(code, filename)
        except SyntaxError as exc:
            error = {
                "type": type(exc).__name__,
                "message": str(exc.msg),
                "lineno": exc.lineno,
                "traceback": "".join(traceback.format_exception_only(type(exc), exc)),
            }
        else:
            linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
            try:
                with redirect(out, err):
                    exec(body, self.namespace)
                    if last is not None:
                        value = eval(last, self.namespace)
                        if value is not None:
                            out.write(repr(value) + "\n")
                value = _plain_value(value)
            except _FinalAnswer:
                value = None
            except _Interrupted:
                interrupted = True
                value = None
            except BaseException as exc:  # user code: report everything, including SystemExit
                value = None
                if self._final is None:
                    error = self._error(exc, filename)
            self._answer_ready()
        return {
            "stdout": out.getvalue(),
            "stderr": err.getvalue(),
            "stdout_cut": out.cut,
            "stderr_cut": err.cut,
            "error": error,
            "final": self._final,
            "interrupted": interrupted,
            "value": value,
            "duration": time.perf_counter() - start,
        }

    def _error(self, exc: BaseException, filename: str) -> dict:
        try:
            message = str(exc)
        except Exception as inner:  # an exception whose own str() fails
            message = f"<{type(exc).__name__} whose message cannot be shown: {type(inner).__name__}>"
        return {"type": type(exc).__name__, "message": message, "traceback": self._user_traceback(exc, filename)}

    @staticmethod
    def _compile(code: str, filename: str) -> tuple[Any, Any]:
        tree = ast.parse(code, filename, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            expr = tree.body.pop()
            last = compile(ast.Expression(expr.value), filename, "eval")
        return compile(tree, filename, "exec"), last

    def _user_traceback(self, exc: BaseException, filename: str) -> str:
        tb = exc.__traceback__
        while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell"):
            tb = tb.tb_next
        try:
            lines = traceback.format_exception(type(exc), exc, tb)
        except Exception:
            return f"{type(exc).__name__} (its traceback cannot be shown)"
        return "".join(lines)[-20_000:]


def _plain_value(value: Any) -> Any:
    """A trailing expression's value as JSON data, or None when it is not plain data (its repr is in stdout)."""
    if not isinstance(value, (bool, int, float, str, list, dict)):
        return None
    try:
        return to_jsonable(value)
    except Exception:  # a cycle, deep nesting, a huge int, an element whose str() fails: the repr says it all
        return None


class _Redirect:
    """Routes sys.stdout/sys.stderr into the captures and marks the span where interrupts may land."""

    def __init__(self, driver: Driver, out: Capture, err: Capture) -> None:
        self.driver, self.out, self.err = driver, out, err

    def __enter__(self) -> None:
        self.saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = self.out, self.err
        try:
            self.driver.in_user_code = True
            if self.driver.stop_reason == "cancelled":  # the cancel came before the span opened
                raise _Interrupted()
        except _Stop:
            self.__exit__()
            raise

    def __exit__(self, *exc: Any) -> None:
        self.driver.in_user_code = False
        sys.stdout, sys.stderr = self.saved


class Driver:
    """The subprocess side: reads requests, runs cells on the main thread, serves tool calls by id."""

    def __init__(self, rfd: int, wfd: int, fd_sock: socket.socket | None) -> None:
        self.rfile = os.fdopen(rfd, "rb", buffering=1 << 16)
        self.wfd = wfd
        self.fd_sock = fd_sock
        self.wlock = threading.Lock()
        self.session = Session(self._remote_call)
        self.requests: list[dict] = []
        self.req_cv = threading.Condition()
        self.pending: dict[str, list] = {}
        self.pending_lock = threading.Lock()
        self.next_call = 0
        self.running: str | None = None
        self.cancelled: collections.deque[str] = collections.deque(maxlen=64)
        self.in_user_code = False
        self.stop_reason: str | None = None

    def send(self, msg: dict) -> None:
        data = json.dumps(msg, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"
        with self.wlock:
            view = memoryview(data)
            while view:
                n = os.write(self.wfd, view)
                view = view[n:]

    def _remote_call(self, name: str, args: list, kwargs: dict) -> Any:
        with self.pending_lock:
            self.next_call += 1
            call_id = f"c{self.next_call}"
            slot = [threading.Event(), None, None]
            self.pending[call_id] = slot
        try:
            try:
                msg = {"type": "tool_call", "id": call_id, "name": name, "args": args, "kwargs": kwargs}
                self.send(msg)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{name}(): arguments must be JSON-serializable ({exc})") from None
            while not slot[0].wait(0.5):
                pass
        finally:
            with self.pending_lock:
                self.pending.pop(call_id, None)
        if slot[2] is not None:
            raise ToolError(f"{name} failed: {slot[2]}")
        return slot[1]

    def reader(self) -> None:
        """Reads stdin on a thread: tool results and cancels act at once, the rest queue for main.

        Whatever ends it (the host closing the channel, user code closing its descriptor) ends the driver.
        """
        try:
            self._read_requests()
        finally:
            self.host_gone()

    def _read_requests(self) -> None:
        for raw in self.rfile:
            try:
                msg = json.loads(raw)
            except (ValueError, RecursionError):
                continue
            if not isinstance(msg, dict):
                continue
            kind = msg.get("type")
            if kind == "tool_result":
                with self.pending_lock:
                    slot = self.pending.get(str(msg.get("id")))
                if slot is not None:
                    slot[1], slot[2] = msg.get("value"), msg.get("error")
                    slot[0].set()
            elif kind == "cancel":
                self.cancel(msg.get("id"))
            else:
                with self.req_cv:
                    self.requests.append(msg)
                    self.req_cv.notify()

    def cancel(self, rid: Any) -> None:
        """Interrupt the running cell, or remember the id so a cell still queued never starts."""
        with self.req_cv:
            if self.running is not None and rid in (None, self.running):
                self.interrupt("cancelled")
            elif rid is not None:
                self.cancelled.append(str(rid))

    def host_gone(self) -> None:
        """The host closed the channel (it exited, or was killed): end now, even mid-execution.

        Processes user code started go too, when this driver leads its process group (or sits in a pid
        namespace where the group's leader is not visible); a group it merely joined is never touched.
        """
        if os.getpgrp() in (0, os.getpid()):
            try:
                os.killpg(0, signal.SIGKILL)
            except OSError:
                pass
        os._exit(0)

    def interrupt(self, reason: str) -> None:
        self.stop_reason = reason
        os.kill(os.getpid(), signal.SIGUSR1)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.in_user_code:
            raise _Interrupted()

    def _redirect(self, out: Capture, err: Capture) -> _Redirect:
        return _Redirect(self, out, err)

    def handle(self, msg: dict) -> bool:
        kind = msg.get("type")
        rid = msg.get("id")
        try:
            if kind == "hello":
                self.session.configure(msg.get("max_output_chars"), msg.get("final_fields"))
                self.session.bind_tools([str(t) for t in msg.get("tools") or []])
                self.send(
                    {
                        "type": "ready",
                        "id": rid,
                        "version": PROTOCOL_VERSION,
                        "pid": os.getpid(),
                        "python": sys.version.split()[0],
                    }
                )
            elif kind == "load":
                fmt = str(msg.get("format") or "text")
                if msg.get("fd"):
                    if self.fd_sock is None:
                        raise ValueError("this driver was started without a descriptor socket")
                    _, fds, _, _ = socket.recv_fds(self.fd_sock, 16, 1)
                    if not fds:
                        raise ValueError("no file descriptor arrived for load")
                    source: Any = fds[0]
                else:
                    source = str(msg["path"])
                value = read_value(source, fmt)
                info = self.session.set_value(str(msg["name"]), value)
                self.send({"type": "loaded", "id": rid, "name": msg["name"], "info": info})
            elif kind == "set":
                info = self.session.set_value(str(msg["name"]), msg.get("value"))
                self.send({"type": "loaded", "id": rid, "name": msg["name"], "info": info})
            elif kind == "execute":
                self.execute(msg)
            elif kind == "shutdown":
                return False
        except Exception as exc:
            self.send({"type": "error", "id": rid, "error": f"{type(exc).__name__}: {exc}"})
        return True

    def execute(self, msg: dict) -> None:
        rid = str(msg.get("id"))
        if msg.get("tools"):
            self.session.bind_tools([str(t) for t in msg["tools"]])
        if msg.get("final_fields") is not None:
            self.session.configure(final_fields=msg["final_fields"])
        timeout = float(msg.get("timeout") or 0)
        with self.req_cv:
            self.stop_reason = "cancelled" if rid in self.cancelled else None
            self.running = rid
        if timeout > 0:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            result = self.session.run(str(msg.get("code") or ""), self._redirect)
        except _Stop:  # a signal that landed just outside user code
            result = {
                "stdout": "",
                "stderr": "",
                "stdout_cut": 0,
                "stderr_cut": 0,
                "error": None,
                "final": None,
                "interrupted": True,
                "value": None,
                "duration": 0.0,
            }
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.running = None
        result["timed_out"] = result.pop("interrupted") and self.stop_reason != "cancelled"
        result["cancelled"] = self.stop_reason == "cancelled"
        try:
            self.send({"type": "result", "id": rid, **result})
        except (ValueError, TypeError, RecursionError) as exc:  # a value that cannot travel: that cell's error
            error = {"type": type(exc).__name__, "message": str(exc), "traceback": f"{type(exc).__name__}: {exc}"}
            self.send({"type": "result", "id": rid, **result, "final": None, "value": None, "error": error})

    def _on_alarm(self, signum: int, frame: Any) -> None:
        self.stop_reason = "timeout"
        if self.in_user_code:
            raise _Interrupted()

    def serve(self) -> None:
        signal.signal(signal.SIGUSR1, self._on_signal)
        signal.signal(signal.SIGALRM, self._on_alarm)
        threading.Thread(target=self.reader, name="rlm-driver-reader", daemon=True).start()
        while True:
            with self.req_cv:
                while not self.requests:
                    self.req_cv.wait()
                msg = self.requests.pop(0)
            if not self.handle(msg):
                break


def _private_channel() -> tuple[int, int]:
    """Move the protocol off fds 0 and 1 so nothing user code starts can read or write it."""
    rfd = os.dup(0)
    wfd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - lives for the process
    sys.stdout = sys.__stdout__ = os.fdopen(1, "w", buffering=1, closefd=False)
    return rfd, wfd


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    fd_sock = None
    if "--fd-socket" in argv:
        fd_sock = socket.socket(fileno=int(argv[argv.index("--fd-socket") + 1]))
        os.set_inheritable(fd_sock.fileno(), False)
    rfd, wfd = _private_channel()
    driver = Driver(rfd, wfd, fd_sock)
    try:
        driver.serve()
    except BaseException:  # the host shows the tail of stderr in its error message
        traceback.print_exc(file=sys.__stderr__)
        os._exit(1)
    os._exit(0)


if __name__ == "__main__":
    main()
