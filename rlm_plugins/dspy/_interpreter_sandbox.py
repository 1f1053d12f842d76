"""Any `dspy.CodeInterpreter` as the engine's Sandbox port, so `RLM(interpreter_factory=...)` runs on it.

The protocol is synchronous and carries no output flags, so this adapter runs `execute` on a worker thread for
the async path (serving async tools on the caller's event loop) and maps DSPy's outcomes to an `ExecResult`:
`FinalOutput` to a final answer, `SyntaxError` / `CodeExecutionError` to an error the model sees, and a bare
`CodeInterpreterError` to a dead sandbox.
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from dspy.primitives.code_interpreter import (
    CodeExecutionError,
    CodeInterpreterError,
    FinalOutput,
    _validate_interpreter,
)

from rlm_plugins._threads import in_thread
from rlm_plugins.core.feedback import clip
from rlm_plugins.errors import SandboxCancelledError, SandboxClosedError, SandboxStartError, SandboxTerminatedError
from rlm_plugins.repl._tools import ToolCaller
from rlm_plugins.repl._values import safe_str
from rlm_plugins.repl.base import BaseSandbox, ExecError, ExecResult, FinalAnswer, Format, Tool
from rlm_plugins.repl.driver import describe, read_value


class InterpreterSandbox(BaseSandbox):
    """The engine's Sandbox over interpreters made by a DSPy `interpreter_factory`.

    Args:
        factory: a zero-argument callable returning a `CodeInterpreter`.
        **options: the engine's sandbox settings (`max_output_chars`, `final_fields`, ...).
    """

    kind = "dspy-interpreter"

    def __init__(self, factory: Callable[[], Any], **options: Any) -> None:
        super().__init__(**options)
        self.factory = factory
        self.interpreter: Any = None
        self._pending: dict[str, Any] = {}
        self._closed = False
        self._cancelled = False
        self._cancel_asked = False

    def start(self) -> None:
        if self._closed:
            raise SandboxClosedError("this sandbox was closed; create a new one")
        if self.interpreter is not None:
            return
        try:
            interpreter = self.factory()
            _validate_interpreter(interpreter)
            if hasattr(interpreter, "output_fields"):
                fields = self.final_fields
                interpreter.output_fields = [{"name": name} for name in fields] if fields else None
            interpreter.start()
        except (CodeInterpreterError, TypeError, OSError) as exc:
            raise SandboxStartError(f"the interpreter from interpreter_factory did not start: {exc}") from exc
        self.interpreter = interpreter

    def load(self, name: str, value: Any, format: Format | None = None) -> dict[str, Any]:
        """Queue `value`; it reaches the interpreter with the next `execute`, once."""
        self.start()
        if isinstance(value, pathlib.Path):
            value = read_value(str(value), format or ("json" if value.suffix.lower() == ".json" else "text"))
        self._pending[name] = value
        return describe(value)

    def execute(self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None) -> ExecResult:
        return self._execute(code, tools, ToolCaller())

    def _execute(self, code: str, tools: Mapping[str, Tool] | None, caller: ToolCaller) -> ExecResult:
        self.start()
        interpreter = self.interpreter
        interpreter.tools.update({name: caller.bind(fn) for name, fn in (tools or {}).items()})
        if hasattr(interpreter, "_tools_registered"):
            interpreter._tools_registered = False
        variables, self._pending = self._pending, {}
        self._cancel_asked = False
        try:
            outcome = interpreter.execute(code, variables)
        except SyntaxError as exc:
            return ExecResult(error=ExecError("SyntaxError", str(exc), f"SyntaxError: {exc}"))
        except CodeExecutionError as exc:
            if self._cancel_asked:
                return ExecResult(stdout=str(exc), cancelled=True)
            return ExecResult(error=ExecError("CodeExecutionError", str(exc), str(exc)))
        except CodeInterpreterError as exc:
            if self._cancelled:
                raise SandboxCancelledError("the execution was cancelled; the interpreter was shut down") from exc
            raise SandboxTerminatedError(f"the interpreter failed and its state is lost: {exc}") from exc
        if isinstance(outcome, FinalOutput):
            raw = outcome.output
            return ExecResult(final=FinalAnswer(None, raw) if isinstance(raw, dict) else FinalAnswer(raw))
        text = _as_text(outcome)
        shown = clip(text, self.max_output_chars)
        return ExecResult(stdout=shown, stdout_cut=max(len(text) - len(shown), 0))

    async def aexecute(
        self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None
    ) -> ExecResult:
        """`execute` on a worker thread; async tools run on this event loop, which stays free meanwhile."""
        return await in_thread(self._execute, code, tools, ToolCaller.here())

    def cancel(self) -> None:
        """Our own sandboxes cancel the running code; any other interpreter can only be shut down."""
        self._cancel_asked = True
        inner = getattr(self.interpreter, "sandbox", None)
        if isinstance(inner, BaseSandbox):
            inner.cancel()
        elif self.interpreter is not None and not self._closed:
            self._cancelled = True
            threading.Thread(target=self.interpreter.shutdown, name="rlm-cancel", daemon=True).start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.interpreter is not None:
            self.interpreter.shutdown()


def _as_text(outcome: Any) -> str:
    """What a `CodeInterpreter` returned, as REPL output (DSPy interpreters may return a list of lines)."""
    if isinstance(outcome, list):
        return "\n".join(map(safe_str, outcome))
    return "" if outcome is None else safe_str(outcome)
