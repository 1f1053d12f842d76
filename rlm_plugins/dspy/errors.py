"""Errors of the DSPy adapter.

The construction-time ones are `rlm_plugins.errors.ConfigurationError` (so also `ValueError`), and carry the
wording of the matching `dspy.RLM` checks. `InvalidToolsError` is also a `TypeError`, the class `dspy.RLM` raises
for the same mistakes, so code written against either module catches both.

    ConfigurationError (rlm_plugins.errors)
    ├── ReservedNameError     a tool, input or output name collides with the REPL's or the result's names
    └── InvalidToolsError     tools given as a dict, or a tool that is not callable (also TypeError)

A provider failure of the root LM leaves the module as one of our `ModelError` classes (with `.partial`, the run
so far) that is also the `dspy.utils.exceptions` class DSPy raised (`LMRateLimitError`, `LMAuthError`,
`LMTransportError`, ...), so `except` clauses written for `dspy.RLM` still catch it. `lm_model_error` builds it.
"""

from __future__ import annotations

import functools

from dspy.utils.exceptions import DSPyError, LMError

from rlm_plugins.core.model_errors import as_model_error, causes
from rlm_plugins.errors import ConfigurationError, ModelError

_METADATA = ("model", "provider", "provider_code", "status", "request_id", "retry_after")


class ReservedNameError(ConfigurationError):
    """A tool, input or output name is invalid or taken; the message names it and says what to rename."""


class InvalidToolsError(ConfigurationError, TypeError):
    """`tools` is not a list of callables; the message shows the list to pass instead."""


class _FromLM:
    """The DSPy side of a mapped error: our message, and DSPy's metadata (model, status, retry_after, ...)."""

    def __init__(self, message: str, source: BaseException | None = None) -> None:
        DSPyError.__init__(self, message)  # type: ignore[arg-type]
        for name in _METADATA:
            if source is not None and getattr(source, name, None) is not None:
                setattr(self, name, getattr(source, name))


@functools.cache
def _flavour(kind: type[ModelError], lm_class: type[LMError]) -> type[ModelError]:
    """The class that is both `kind` and DSPy's `lm_class` (made once per pair)."""
    name = f"{lm_class.__name__}As{kind.__name__}"
    doc = f"A `{kind.__name__}` that is also DSPy's `{lm_class.__name__}`."
    return type(name, (_FromLM, kind, lm_class), {"__doc__": doc, "__module__": __name__})


def lm_model_error(exc: BaseException, model: str) -> ModelError:
    """A root-LM failure as our matching `ModelError` subclass that is also the DSPy `LMError` class DSPy raised."""
    mapped = as_model_error(exc, model)
    source = next((error for error in causes(exc) if isinstance(error, LMError)), None)
    return _flavour(type(mapped), type(source) if source is not None else LMError)(str(mapped), source)


__all__ = ["InvalidToolsError", "ReservedNameError", "lm_model_error"]
