"""Small `dspy.CodeInterpreter`s for the compatibility tests: one that runs code in a dict, one that breaks."""

from __future__ import annotations

import contextlib
import io
from typing import Any

from dspy.primitives.code_interpreter import CodeExecutionError, CodeInterpreterError, FinalOutput


class _Submitted(Exception):
    def __init__(self, output: Any) -> None:
        self.output = output


class DictInterpreter:
    """Runs code with `exec` in one dict; `SUBMIT(**fields)` ends it; code containing `crash` breaks the process."""

    def __init__(self, fail_start: bool = False) -> None:
        self.tools: dict[str, Any] = {}
        self.output_fields: list[dict[str, Any]] | None = None
        self.namespace: dict[str, Any] = {}
        self.fail_start = fail_start
        self.started = False

    def start(self) -> None:
        if self.fail_start:
            raise CodeInterpreterError("the runtime binary is missing")
        self.started = True

    def execute(self, code: str, variables: dict[str, Any] | None = None) -> Any:
        self.start()
        if "crash" in code:
            raise CodeInterpreterError("the interpreter process died")

        def submit(*args: Any, **kwargs: Any) -> None:
            raise _Submitted(kwargs or (args[0] if args else None))

        self.namespace.update(variables or {}, **self.tools, SUBMIT=submit)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, "<code>", "exec"), self.namespace)
        except _Submitted as done:
            return FinalOutput(done.output)
        except SyntaxError:
            raise
        except Exception as exc:
            raise CodeExecutionError(f"{type(exc).__name__}: {exc}") from exc
        return out.getvalue()

    def shutdown(self) -> None:
        self.started = False
