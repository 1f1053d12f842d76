"""A registered tool's schema: its JSON-schema parameters from the type hints, its descriptions from the docstring.

The root model reads a tool as its signature and the first paragraph of its description (`describe_tools` in the
core); the schema is what an assistant integration shows or forwards (`RLMAgent.tools`).
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlm_plugins.agent.errors import ToolSchemaError
from rlm_plugins.repl._tools import is_async

_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
_ARRAYS = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Iterable)
_OBJECTS = (dict, collections.abc.Mapping)
_ARG_LINE = re.compile(r"^\s+(\*{0,2}\w+)(?:\s*\([^)]*\))?:\s*(.*)$")


@dataclass
class ToolSchema:
    """A tool as an assistant sees it: name, description, JSON-schema parameters, and whether it is async."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
    is_async: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The OpenAI function-tool shape: `{"name", "description", "parameters"}`."""
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


def tool_schema(name: str, fn: Callable[..., Any], description: str | None = None) -> ToolSchema:
    """The schema of `fn` registered as `name`; `description` replaces the docstring's summary when given."""
    if not callable(fn):
        raise ToolSchemaError(f"register_tool({name!r}, ...): {fn!r} is not callable; pass a function")
    doc = inspect.getdoc(fn) or ""
    summary, arg_docs = _parse_doc(doc)
    signature = _signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: describe the parameters without types
        hints = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in signature.parameters.values() if signature is not None else ():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        prop = json_type(hints.get(param.name, Any))
        if param.name in arg_docs:
            prop["description"] = arg_docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        elif _plain(param.default):
            prop["default"] = param.default
        properties[param.name] = prop
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return ToolSchema(name, (description or summary).strip(), parameters, is_async(fn))


def described(fn: Callable[..., Any], description: str | None) -> Callable[..., Any]:
    """`fn` as the REPL offers it: the same call, its signature with string annotations evaluated (as the root
    prompt shows it), and `description`, when given, as its docstring."""
    if is_async(fn):

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await fn(*args, **kwargs)

    else:

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **kwargs)

    functools.update_wrapper(wrapper, fn, assigned=("__module__", "__name__", "__qualname__", "__doc__"), updated=())
    if description is not None:
        wrapper.__doc__ = description
    signature = _signature(fn)
    if signature is not None:
        wrapper.__signature__ = signature  # type: ignore[attr-defined]
    return wrapper


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn, eval_str=True)
    except Exception:  # unresolvable string annotations: keep them as written
        try:
            return inspect.signature(fn)
        except (TypeError, ValueError):
            return None


def json_type(hint: Any) -> dict[str, Any]:
    """The JSON schema of a type hint; `{}` (anything) for hints it cannot express."""
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or (hasattr(types, "UnionType") and isinstance(hint, getattr(types, "UnionType", ()))):
        return {"anyOf": [json_type(arg) for arg in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if hint in _ARRAYS or origin in _ARRAYS:
        return {"type": "array", "items": json_type(args[0])} if args and args[-1] is not Ellipsis else _array(args)
    if hint in _OBJECTS or origin in _OBJECTS:
        return {"type": "object", "additionalProperties": json_type(args[1])} if len(args) == 2 else {"type": "object"}
    return {}


def _array(args: tuple[Any, ...]) -> dict[str, Any]:
    return {"type": "array", "items": json_type(args[0])} if args else {"type": "array"}


def _parse_doc(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (first paragraph) and the `Args:` descriptions of a Google-style docstring."""
    summary = " ".join(doc.split("\n\n")[0].split())
    args: dict[str, str] = {}
    lines = doc.splitlines()
    heads = [i for i, line in enumerate(lines) if line.strip() in ("Args:", "Arguments:", "Parameters:")]
    if not heads:
        return summary, args
    current, indent = None, None
    for line in lines[heads[0] + 1 :]:
        if line.strip() and not line.startswith(" "):
            break  # the next section
        depth = len(line) - len(line.lstrip())
        match = _ARG_LINE.match(line)
        if match and (indent is None or depth == indent):
            indent, current = depth, match.group(1).lstrip("*")
            args[current] = match.group(2).strip()
        elif current is not None and line.strip():
            args[current] = f"{args[current]} {line.strip()}"
    return summary, args


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))
