"""What the root model is told about the REPL's variables and tools, instead of their contents."""

from __future__ import annotations

import inspect
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

from rlm_plugins.core.ports import ContextInfo, ToolSpec
from rlm_plugins.core.prompts import describe_value


def describe_variable(name: str, value: Any, loaded: Mapping[str, Any]) -> ContextInfo:
    """What the root model is told about a variable: metadata and a preview, never the content."""
    if isinstance(value, pathlib.Path):
        with open(value, "rb") as fh:
            head = fh.read(500)
        return ContextInfo(
            name,
            f"{loaded.get('type', 'str')} (from file {value.name})",
            int(loaded.get("length", 0)),
            None,
            head.decode("utf-8", "replace"),
        )
    return describe_value(name, value)


def describe_tools(tools: Mapping[str, Callable[..., Any]]) -> list[ToolSpec]:
    specs = []
    for name, fn in tools.items():
        try:
            signature = f"{name}{inspect.signature(fn)}"
        except (TypeError, ValueError):
            signature = f"{name}(...)"
        doc = (inspect.getdoc(fn) or "").strip().split("\n\n")[0]
        specs.append(ToolSpec(name, signature, doc))
    return specs


def is_small(value: Any) -> bool:
    """Inputs small enough to show the policy directly (DSPy puts them in the prompt)."""
    return isinstance(value, (int, float, bool)) or (isinstance(value, str) and len(value) <= 2_000)
