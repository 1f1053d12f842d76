"""Carry DSPy's per-call settings (`dspy.context(...)` overrides) into the threads that serve REPL tool calls.

`dspy.settings` keeps `dspy.context` overrides in a context variable, which a plain worker thread does not inherit:
there `dspy.settings.lm` would be the global LM, callbacks and the usage tracker of the call would be lost, and the
LM history would not reach the calling modules. As `dspy.Parallel` does, the overrides are captured when a call
starts and re-applied around every host function the REPL reaches. Unlike `dspy.Parallel`, the usage tracker is
shared, not copied: sub-calls belong to the same module call and count in its `get_lm_usage()`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from dspy.dsp.utils.utils import dotdict

from rlm_plugins.dspy._dspy_private import overrides_var


def capture() -> dict[str, Any]:
    """The `dspy.context` overrides in force in the calling thread or task."""
    return dotdict(overrides_var.get())


@contextlib.contextmanager
def applied(overrides: dict[str, Any]) -> Iterator[None]:
    """Run a block under `overrides` (merged over whatever the current thread has)."""
    token = overrides_var.set(dotdict({**overrides_var.get(), **overrides}))
    try:
        yield
    finally:
        overrides_var.reset(token)


def bind(fn: Callable[..., Any], overrides: dict[str, Any]) -> Callable[..., Any]:
    """`fn` (sync or async) wrapped to run under `overrides`, keeping its name, docstring and signature."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def abound(*args: Any, **kwargs: Any) -> Any:
            with applied(overrides):
                return await fn(*args, **kwargs)

        return abound

    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> Any:
        with applied(overrides):
            return fn(*args, **kwargs)

    return bound
