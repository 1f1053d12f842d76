"""Our sandboxes behind DSPy's `CodeInterpreter` protocol, for the native `dspy.RLM` and `dspy.configure`.

    rlm = dspy.RLM("context, query -> answer", interpreter_factory=interpreter_factory("local"))
    dspy.configure(interpreter_factory=interpreter_factory("e2b"))

Each interpreter owns one sandbox (`local`, `inprocess` or `e2b`), started on the first `start()` or `execute()`.
Input variables travel into it once: a variable that is the same object as at the previous `execute` is not sent
again, and big values go as a file (tmpfs for `local`), never as code text. Tool calls from the running code are
served concurrently on host threads under the caller's `dspy.context`, so `llm_query`, user tools and DSPy's
sandbox facade (`__dspy_construct__` / `__dspy_call__`, for sub-agents built in the REPL) all work.
"""

from __future__ import annotations

import keyword
import pathlib
import threading
from collections.abc import Callable
from typing import Any

from dspy.primitives.code_interpreter import CodeExecutionError, CodeInterpreterError, FinalOutput
from pydantic_core import to_jsonable_python

from rlm_plugins.errors import ConfigurationError, RLMError, SandboxError
from rlm_plugins.repl.base import BaseSandbox, ExecResult
from rlm_plugins.repl.factory import BACKENDS, create_sandbox

EXECUTION_INSTRUCTIONS = {
    "local": (
        "Code runs as CPython in a persistent sandboxed subprocess (isolated with bubblewrap or namespaces where "
        "the machine allows). Inputs are loaded once and stay loaded; state, imports and functions persist. Host "
        "tools and SUBMIT are global functions; the value of a last-line expression is shown."
    ),
    "inprocess": (
        "Code runs as CPython inside the host process, with no isolation. State, imports and functions persist. "
        "Host tools and SUBMIT are global functions; the value of a last-line expression is shown."
    ),
    "e2b": (
        "Code runs as CPython in a persistent remote E2B sandbox. Inputs are uploaded once and stay loaded; state, "
        "imports and functions persist. Host tools and SUBMIT are global functions; the value of a last-line "
        "expression is shown."
    ),
}
_PASS_AS_IS = (str, bytes, bytearray, int, float, bool, type(None), list, dict, tuple, pathlib.Path)
_MISSING = object()


class SandboxInterpreter:
    """A `dspy.CodeInterpreter` over one rlm-plugins sandbox.

    Args:
        sandbox: the backend: "local", "inprocess" or "e2b".
        tools: host functions the code may call; `dspy.RLM` adds its own to this mutable dict.
        output_fields: the `SUBMIT` fields (`[{"name": ...}, ...]`), read when the sandbox starts.
        max_output_chars: printed output kept per execution (cut inside the sandbox).
        timeout: seconds one execution may run; past it the code is interrupted (the session survives).
        **options: passed to the sandbox (e.g. `isolation="require"` for local, `template=` for e2b).

    Examples:
        >>> interp = SandboxInterpreter("inprocess")
        >>> interp.execute("x = 20\\nx + 22")
        42
        >>> interp.execute("SUBMIT(x)")
        FinalOutput({'output': 20})
        >>> interp.shutdown()
    """

    def __init__(
        self,
        sandbox: str = "local",
        tools: dict[str, Callable[..., Any]] | None = None,
        output_fields: list[dict[str, Any]] | None = None,
        *,
        max_output_chars: int = 100_000,
        timeout: float = 300.0,
        **options: Any,
    ) -> None:
        if sandbox not in BACKENDS:
            raise ConfigurationError(f"unknown sandbox kind {sandbox!r}; use one of: {', '.join(sorted(BACKENDS))}")
        self.kind = sandbox
        self.tools: dict[str, Callable[..., Any]] = dict(tools or {})
        self.output_fields = output_fields
        self.max_output_chars = max_output_chars
        self.timeout = timeout
        self.options = options
        self.execution_instructions = EXECUTION_INSTRUCTIONS.get(sandbox, "")
        self._sandbox: BaseSandbox | None = None
        self._sent: dict[str, Any] = {}
        self._ended = False
        self._lock = threading.Lock()

    @property
    def sandbox(self) -> BaseSandbox | None:
        """The running sandbox (None before `start()`)."""
        return self._sandbox

    def _final_fields(self) -> list[str]:
        if not self.output_fields:
            return ["output"]
        return [str(field["name"]) for field in self.output_fields]

    def start(self) -> None:
        """Start the sandbox; a no-op when it runs. After `shutdown()` it raises `CodeInterpreterError`."""
        with self._lock:
            if self._ended:
                raise CodeInterpreterError("this interpreter was shut down; create a new one for a fresh session")
            if self._sandbox is not None:
                return
            options = {"max_output_chars": self.max_output_chars, **self.options}
            try:
                sandbox = create_sandbox(self.kind, final_fields=self._final_fields(), **options)
                sandbox.start()
            except (RLMError, ImportError, OSError) as exc:
                self._ended = True
                raise CodeInterpreterError(f"the {self.kind} sandbox could not start: {exc}") from exc
            self._sandbox = sandbox

    def execute(self, code: str, variables: dict[str, Any] | None = None) -> Any:
        """Run `code`; returns `FinalOutput` on SUBMIT, else the output (or a last-line value, or None).

        Raises:
            SyntaxError: the code does not parse (nothing ran).
            CodeExecutionError: the code raised, or timed out and was interrupted; the session is intact.
            CodeInterpreterError: the sandbox failed or was shut down; the session is gone.
        """
        if not isinstance(code, str):
            raise CodeInterpreterError(f"code must be a string, not {type(code).__name__}")
        variables = {} if variables is None else variables
        if not isinstance(variables, dict):
            raise CodeInterpreterError("variables must be a dict mapping Python identifiers to values")
        bad = [n for n in variables if not isinstance(n, str) or not n.isidentifier() or keyword.iskeyword(n)]
        if bad:
            raise CodeInterpreterError(f"variable names must be Python identifiers; invalid names: {bad!r}")
        self.start()
        sandbox = self._sandbox
        assert sandbox is not None
        try:
            for name, value in variables.items():
                if self._sent.get(name, _MISSING) is value:
                    continue
                sandbox.load(name, value if isinstance(value, _PASS_AS_IS) else to_jsonable_python(value, fallback=str))
                self._sent[name] = value
            result = sandbox.execute(code, tools=self.tools, timeout=self.timeout)
        except SandboxError as exc:
            self.shutdown()
            raise CodeInterpreterError(f"the {self.kind} sandbox failed and its state is lost: {exc}") from exc
        except RLMError as exc:
            raise CodeInterpreterError(str(exc)) from exc
        return self._outcome(result)

    def _outcome(self, result: ExecResult) -> Any:
        if result.final is not None:
            final = result.final
            return FinalOutput(final.fields if final.fields is not None else final.value)
        output = "\n".join(part.rstrip("\n") for part in (result.stdout, result.stderr) if part)
        if result.error is not None:
            message = str(result.error).rstrip()
            if result.error.is_syntax_error:
                raise SyntaxError(message)
            if output:
                message = f"{message}\nOutput before the error:\n{output}"
            raise CodeExecutionError(message)
        if result.timed_out or result.cancelled:
            how = f"timed out after {self.timeout:g}s" if result.timed_out else "was cancelled"
            raise CodeExecutionError(
                f"the code {how} and was interrupted; the REPL state is kept. Do less per step."
                + (f"\nOutput before it stopped:\n{output}" if output else "")
            )
        if result.value is not None and result.stdout.rstrip("\n") == repr(result.value) and not result.stderr:
            return result.value
        return output or None

    def shutdown(self) -> None:
        """Stop the sandbox and end the session; calling it again is a no-op."""
        with self._lock:
            self._ended = True
            sandbox, self._sandbox = self._sandbox, None
            self._sent = {}
        if sandbox is not None:
            sandbox.close()

    def __enter__(self) -> SandboxInterpreter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __call__(self, code: str, variables: dict[str, Any] | None = None) -> Any:
        return self.execute(code, variables)


class InterpreterFactory:
    """A zero-argument callable making a new `SandboxInterpreter` per call, safe to call from many threads.

    `execution_instructions` describes the runtime; `dspy.RLM` puts it in its action prompt. `rlm_plugins.dspy.RLM`
    recognises this factory and drives the sandbox natively, without the `CodeInterpreter` layer.
    """

    def __init__(self, sandbox: str = "local", **options: Any) -> None:
        if sandbox not in BACKENDS:
            raise ConfigurationError(f"unknown sandbox kind {sandbox!r}; use one of: {', '.join(sorted(BACKENDS))}")
        self.sandbox = sandbox
        self.options = options
        self.execution_instructions = EXECUTION_INSTRUCTIONS.get(sandbox, "")

    def __call__(self) -> SandboxInterpreter:
        return SandboxInterpreter(self.sandbox, **self.options)

    def __repr__(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"interpreter_factory({self.sandbox!r}{options})"


def interpreter_factory(sandbox: str = "local", **options: Any) -> InterpreterFactory:
    """A zero-argument interpreter factory over one of our sandboxes, for `dspy.RLM` and `dspy.configure`.

    Args:
        sandbox: "local" (an isolated subprocess), "inprocess" (no isolation, fastest) or "e2b".
        **options: `SandboxInterpreter` options (`max_output_chars`, `timeout`) and sandbox options.

    Returns:
        The factory; each call makes a new, unstarted interpreter.

    Raises:
        ConfigurationError: `sandbox` is not a known kind.

    Examples:
        >>> import dspy
        >>> rlm = dspy.RLM("context, query -> answer", interpreter_factory=interpreter_factory("local"))
    """
    return InterpreterFactory(sandbox, **options)
