"""Checks `RLM.__init__` runs on tools and field names, with `dspy.RLM`'s rules and wording."""

from __future__ import annotations

import functools
import inspect
import keyword
from collections.abc import Callable
from typing import Any

import dspy
from dspy.adapters.types.tool import Tool
from dspy.primitives.facade import is_reserved_sandbox_name

from rlm_plugins.dspy.errors import InvalidToolsError, ReservedNameError
from rlm_plugins.repl._tools import is_async
from rlm_plugins.repl.base import RESERVED_NAMES

RESERVED_SANDBOX_NAMES = RESERVED_NAMES
"""Names the REPL owns: the sub-call functions, the final-answer functions and `print`."""
RESERVED_RESULT_NAMES = frozenset({"trajectory", "final_reasoning"})
"""Names the returned Prediction owns next to the output fields."""


def normalize_tools(tools: Any) -> dict[str, Tool]:
    """A list of functions or `dspy.Tool`s as a dict of `dspy.Tool` by name."""
    if not tools:
        return {}
    if isinstance(tools, dict):
        raise InvalidToolsError(
            "tools must be a list, not a dict. Change tools={'name': func} to tools=[func] "
            "(tool names are inferred from function names, or use dspy.Tool(func, name='custom_name'))"
        )
    normalized: dict[str, Tool] = {}
    for value in tools:
        if not isinstance(value, Tool) and not callable(value):
            raise InvalidToolsError(f"Tool {value!r} must be callable, got {type(value).__name__}")
        tool = value if isinstance(value, Tool) else Tool(value)
        if tool.name in normalized:
            raise ReservedNameError(f"Duplicate tool name '{tool.name}': give one of them another name with dspy.Tool")
        normalized[tool.name] = tool
    return normalized


def _reserved(name: str) -> bool:
    return name in RESERVED_SANDBOX_NAMES or is_reserved_sandbox_name(name)


def validate_namespace(signature: type[dspy.Signature], tools: dict[str, Tool]) -> None:
    """Refuse tool, input and output names that are not identifiers or that collide with built-in names."""
    for name in tools:
        if not name.isidentifier() or keyword.iskeyword(name):
            raise ReservedNameError(f"Invalid tool name '{name}': must be a valid Python identifier and not a keyword")
        if _reserved(name):
            raise ReservedNameError(f"Tool name '{name}' conflicts with built-in sandbox function; rename the tool")
    inputs = set(signature.input_fields)
    if "interpreter_factory" in inputs:
        raise ReservedNameError(
            "'interpreter_factory' is reserved for RLM runtime configuration, not a signature input."
        )
    reserved_inputs = sorted(name for name in inputs if _reserved(name))
    if reserved_inputs:
        raise ReservedNameError(f"Input fields conflict with built-in sandbox functions: {reserved_inputs}")
    tool_inputs = sorted(inputs & tools.keys())
    if tool_inputs:
        raise ReservedNameError(f"Input fields conflict with user tools: {tool_inputs}")
    reserved_outputs = sorted(set(signature.output_fields) & RESERVED_RESULT_NAMES)
    if reserved_outputs:
        raise ReservedNameError(f"Output fields conflict with RLM result metadata: {reserved_outputs}")


def validate_inputs(signature: type[dspy.Signature], input_args: dict[str, Any]) -> None:
    """Call-time check: exactly the signature's inputs (a plain ValueError, as in `dspy.RLM`)."""
    names = set(signature.input_fields)
    unexpected = set(input_args) - names
    if unexpected:
        raise ValueError(f"Unexpected inputs not declared in the signature: {sorted(unexpected)}")
    missing = names - set(input_args)
    if missing:
        raise ValueError(f"Missing required inputs: {sorted(missing)}")


def repl_callable(tool: Tool) -> Callable[..., Any]:
    """A `dspy.Tool` as the REPL calls it: positional or keyword arguments, through the Tool (sync or async)."""
    params = inspect.signature(tool.func)

    def keywords(args: tuple, kwargs: dict) -> dict[str, Any]:
        return dict(params.bind(*args, **kwargs).arguments) if args else kwargs

    func = tool.func
    if is_async(func):

        async def ainvoke(*args: Any, **kwargs: Any) -> Any:
            return await tool.acall(**keywords(args, kwargs))

        invoke: Callable[..., Any] = ainvoke
    else:

        def invoke(*args: Any, **kwargs: Any) -> Any:
            return tool(**keywords(args, kwargs))

    functools.update_wrapper(invoke, tool.func)
    invoke.__name__ = tool.name
    invoke.__signature__ = params  # type: ignore[attr-defined]
    return invoke
