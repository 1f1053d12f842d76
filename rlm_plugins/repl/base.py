"""The Sandbox port: what the engine needs from any place that runs REPL code, and what it gets back."""

from __future__ import annotations

import abc
import atexit
import contextlib
import json
import pathlib
import threading
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from rlm_plugins._threads import in_thread
from rlm_plugins.repl._values import clean, clean_text, safe_str
from rlm_plugins.repl.driver import FINAL_NAMES

Tool = Callable[..., Any] | Callable[..., Awaitable[Any]]
"""A host function user code can call by name; sync or async."""

Format = Literal["text", "json", "bytes", "mmap"]
IsolationLevel = Literal["bwrap", "namespace", "none", "vm", "container"]
"""How far sandboxed code is kept from the host: a bubblewrap jail, namespaces, nothing, its own VM (E2B), or a
container (Docker, Podman)."""

SMALL_VALUE_BYTES = 64 * 1024
"""Values whose JSON is smaller than this travel inline (`set`); larger ones as a file (`load`)."""
SUBCALL_NAMES = ("llm_query", "llm_query_batched", "rlm_query")
"""The sub-call functions the engine gives every execution."""
RESERVED_NAMES = frozenset({*SUBCALL_NAMES, *FINAL_NAMES, "print"})
"""Names the REPL owns (the sub-call functions, the final-answer functions, `print`): no tool or input may take one.
The one list: the engine, the DSPy module and the LangChain tools all check against it."""


@dataclass
class ExecError:
    """An exception raised by user code, with its traceback trimmed to the user's cells."""

    type: str
    message: str
    traceback: str = ""

    @property
    def is_syntax_error(self) -> bool:
        return self.type in ("SyntaxError", "IndentationError", "TabError")

    def __str__(self) -> str:
        return self.traceback.strip() or f"{self.type}: {self.message}"


@dataclass
class FinalAnswer:
    """What FINAL / FINAL_VAR / SUBMIT ended the execution with."""

    value: Any
    fields: dict[str, Any] | None = None
    """The keyword arguments of SUBMIT(**fields); None for FINAL and FINAL_VAR."""


@dataclass
class ExecResult:
    """The outcome of one execution."""

    stdout: str = ""
    stderr: str = ""
    error: ExecError | None = None
    final: FinalAnswer | None = None
    timed_out: bool = False
    cancelled: bool = False
    stdout_cut: int = 0
    """Characters of stdout cut inside the sandbox (past `max_output_chars`)."""
    stderr_cut: int = 0
    duration: float = 0.0
    value: Any = None
    """The value of a trailing expression, when it is plain JSON data (its repr is also in stdout)."""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return bool(self.stdout_cut or self.stderr_cut)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out and not self.cancelled

    @classmethod
    def from_message(cls, msg: Mapping[str, Any]) -> ExecResult:
        """Build a result from the driver's `result` message, checking every field's type."""
        err = msg.get("error")
        final = msg.get("final")
        fields = final.get("fields") if isinstance(final, dict) else None
        return cls(
            stdout=_text(msg.get("stdout")),
            stderr=_text(msg.get("stderr")),
            error=ExecError(_text(err.get("type")) or "Error", _text(err.get("message")), _text(err.get("traceback")))
            if isinstance(err, dict)
            else None,
            final=FinalAnswer(clean(final.get("value")), clean(fields) if isinstance(fields, dict) else None)
            if isinstance(final, dict)
            else None,
            timed_out=msg.get("timed_out") is True,
            cancelled=msg.get("cancelled") is True,
            stdout_cut=_count(msg.get("stdout_cut")),
            stderr_cut=_count(msg.get("stderr_cut")),
            duration=float(msg["duration"]) if isinstance(msg.get("duration"), (int, float)) else 0.0,
            value=clean(msg.get("value")),
        )


@dataclass
class ToolCallRecord:
    """One host tool call made by user code during an execution."""

    name: str
    duration: float
    error: str | None = None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        return "" if value is None else safe_str(value)
    return clean_text(value)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def infer_format(value: Any, format: Format | None = None) -> Format:
    """How a value travels into the sandbox: text for str and text files, json for containers, bytes for bytes."""
    if format is not None:
        if format not in ("text", "json", "bytes", "mmap"):
            from rlm_plugins.errors import ConfigurationError

            raise ConfigurationError(f"format={format!r} is not one of 'text', 'json', 'bytes', 'mmap'")
        return format
    if isinstance(value, pathlib.Path):
        return "json" if value.suffix.lower() == ".json" else "text"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes"
    return "json"


def plan_load(name: str, value: Any, format: Format | None) -> tuple[Format, dict[str, Any] | None]:
    """Check the name, pick the format, and give the inline `set` message when the value is small enough."""
    if not str(name).isidentifier():
        from rlm_plugins.errors import ConfigurationError

        raise ConfigurationError(f"cannot load into {name!r}: the name must be a Python identifier")
    fmt = infer_format(value, format)
    inline = small_json(value) if fmt in ("text", "json") and not isinstance(value, pathlib.Path) else None
    return fmt, None if inline is None else {"type": "set", "name": name, "value": json.loads(inline)}


def small_json(value: Any) -> str | None:
    """The JSON text of a small, JSON-typed value, or None when it should travel as a file."""
    if isinstance(value, (str, bytes, bytearray, memoryview, pathlib.Path)):
        if isinstance(value, str) and len(value) < SMALL_VALUE_BYTES // 4:
            return json.dumps(value)
        return None
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return None
    return text if len(text) < SMALL_VALUE_BYTES else None


@runtime_checkable
class Sandbox(Protocol):
    """A place that runs REPL code: a namespace that lives across executions, with host tools.

    Every backend (local subprocess, in-process, E2B) implements both the sync and the async methods; the async
    ones never block the event loop.
    """

    kind: str
    isolation: IsolationLevel

    def start(self) -> None: ...
    def load(self, name: str, value: Any, format: Format | None = None) -> dict[str, Any]: ...
    def execute(
        self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None
    ) -> ExecResult: ...
    def close(self) -> None: ...
    def cancel(self) -> None: ...
    async def astart(self) -> None: ...
    async def aload(self, name: str, value: Any, format: Format | None = None) -> dict[str, Any]: ...
    async def aexecute(
        self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None
    ) -> ExecResult: ...
    async def aclose(self) -> None: ...
    async def acancel(self) -> None: ...


class BaseSandbox(abc.ABC):
    """Shared plumbing: context managers, options common to all backends, default async twins."""

    kind = "base"
    isolation: IsolationLevel = "none"

    def __init__(
        self,
        *,
        max_output_chars: int = 10_000,
        timeout: float = 300.0,
        grace: float = 3.0,
        final_fields: list[str] | None = None,
    ) -> None:
        self.max_output_chars = max_output_chars
        self.timeout = timeout
        self.grace = grace
        self.final_fields = final_fields
        self._exec_lock = threading.Lock()

    @contextlib.contextmanager
    def _one_execution(self) -> Iterator[None]:
        """Hold the sandbox for one execution; a second one at the same time is refused, not queued."""
        if not self._exec_lock.acquire(blocking=False):
            from rlm_plugins.errors import SandboxError

            raise SandboxError("this sandbox is already running code; use one sandbox per concurrent run")
        try:
            yield
        finally:
            self._exec_lock.release()

    def _track(self) -> None:
        """Close this sandbox at interpreter exit if nobody did (its process or VM must not outlive us)."""
        _LIVE.add(self)

    def _untrack(self) -> None:
        _LIVE.discard(self)

    @abc.abstractmethod
    def start(self) -> None:
        """Start the sandbox; calling it again is a no-op."""

    @abc.abstractmethod
    def load(self, name: str, value: Any, format: Format | None = None) -> dict[str, Any]:
        """Bind `value` to `name` in the REPL, once; returns the driver's description (type, length).

        It starts the sandbox when needed, so a backend may overlap its start with staging the value.
        """

    @abc.abstractmethod
    def execute(self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None) -> ExecResult:
        """Run `code` in the REPL namespace, serving calls to `tools` while it runs."""

    @abc.abstractmethod
    async def aexecute(
        self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None
    ) -> ExecResult:
        """The async twin of `execute`; it never blocks the event loop."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the sandbox and release everything it holds; calling it again is a no-op."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Stop the running execution, if any, and return at once; safe from any thread.

        The driver is asked to interrupt the code: the `execute`/`aexecute` running returns a result with
        `cancelled=True` and the REPL keeps its state. Code that ignores it for `grace` seconds is killed with the
        sandbox; that execution then raises `SandboxCancelledError`. With nothing running it does nothing.
        """

    async def astart(self) -> None:
        await in_thread(self.start)

    async def aload(self, name: str, value: Any, format: Format | None = None) -> dict[str, Any]:
        return await in_thread(self.load, name, value, format)

    async def aclose(self) -> None:
        await in_thread(self.close)

    async def acancel(self) -> None:
        """The async twin of `cancel`; it never blocks the event loop."""
        self.cancel()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self):
        await self.astart()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


_LIVE: weakref.WeakSet[BaseSandbox] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for sandbox in list(_LIVE):
        try:
            sandbox.close()
        except Exception:
            pass
