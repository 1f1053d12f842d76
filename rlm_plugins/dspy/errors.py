"""Construction-time errors of the DSPy adapter.

Both are `rlm_plugins.errors.ConfigurationError` (so also `ValueError`), and carry the wording of the matching
`dspy.RLM` checks. `InvalidToolsError` is also a `TypeError`, the class `dspy.RLM` raises for the same mistakes, so
code written against either module catches both.

    ConfigurationError (rlm_plugins.errors)
    ├── ReservedNameError     a tool, input or output name collides with the REPL's or the result's names
    └── InvalidToolsError     tools given as a dict, or a tool that is not callable (also TypeError)
"""

from __future__ import annotations

from rlm_plugins.errors import ConfigurationError


class ReservedNameError(ConfigurationError):
    """A tool, input or output name is invalid or taken; the message names it and says what to rename."""


class InvalidToolsError(ConfigurationError, TypeError):
    """`tools` is not a list of callables; the message shows the list to pass instead."""


__all__ = ["InvalidToolsError", "ReservedNameError"]
