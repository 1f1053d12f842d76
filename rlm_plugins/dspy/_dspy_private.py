"""The only place the DSPy adapter touches DSPy internals; tests/compat/test_dspy_private.py guards each one.

DSPy has no public API for these two needs:
- `overrides_var`: the context variable holding `dspy.context(...)` overrides, read to carry a call's settings
  into the worker threads that serve REPL tool calls (`dspy.settings.copy()` would also freeze global settings).
- `reset_tool_registration`: `dspy.PythonInterpreter` registers its tools once per process; after the tools are
  replaced (each call brings fresh `llm_query` budgets), its `_tools_registered` flag must be cleared, as
  `dspy.RLM` clears it.
When DSPy renames either, the guard test fails and this module is the one to update.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from dspy.dsp.utils.settings import thread_local_overrides

overrides_var: ContextVar[Any] = thread_local_overrides

_TOOLS_FLAG = "_tools_registered"


def reset_tool_registration(interpreter: Any) -> None:
    """Make `interpreter` register its (replaced) tools again before the next `execute`."""
    if hasattr(interpreter, _TOOLS_FLAG):
        setattr(interpreter, _TOOLS_FLAG, False)


__all__ = ["overrides_var", "reset_tool_registration"]
