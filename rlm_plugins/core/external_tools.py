"""External tools (OpenAI-format tool specs the caller runs) as REPL functions, and final-answer checks.

A bound tool is a function in the REPL with the tool's signature. Calling it does not run the tool: the call
is recorded for the caller and the code block stops (the call raises inside the REPL with a note saying so).
Before the root model's next turn the run pauses (`rlm_plugins.core.tool_turns`) and the caller gets the recorded
tool calls (ChatRLM: an `AIMessage`; the server: a `finish_reason="tool_calls"` message); the REPL session waits in
the session store until the results come back. `tool_setup` builds the REPL functions, the instructions for the
root model and the final-answer check for one call's tools, tool choice and output schema.
"""

from __future__ import annotations

import inspect
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.repl.base import RESERVED_NAMES, FinalAnswer

CALL_ID_PREFIX = "call_rlm"
RESULTS_VAR = "tool_results"
_TYPES: dict[str, type] = {
    "integer": int,
    "number": float,
    "string": str,
    "boolean": bool,
    "array": list,
    "object": dict,
}


class ToolCallSent(Exception):
    """Raised inside the REPL when code calls an external tool: the call went to the caller."""


def normalize_tool_choice(choice: Any, names: list[str]) -> str | None:
    """None (the model decides), "none", "any", or the name of the one tool the model must call."""
    if choice in (None, "auto", False):
        return None
    if choice in ("any", "required", True):
        return "any"
    if choice == "none":
        return "none"
    if isinstance(choice, dict):
        choice = (choice.get("function") or {}).get("name") or choice.get("name")
    if isinstance(choice, str) and choice in names:
        return choice
    msg = f"tool_choice={choice!r} names no bound tool; pass 'auto', 'any', 'none' or one of {names}"
    raise ConfigurationError(msg)


def check_tool_names(names: list[str]) -> None:
    reserved = sorted((RESERVED_NAMES | {RESULTS_VAR}) & set(names))
    if reserved:
        raise ConfigurationError(f"tool names {reserved} are reserved by the REPL; rename those tools")
    bad = [name for name in names if not name.isidentifier()]
    if bad:
        raise ConfigurationError(f"tool names {bad} are not Python identifiers; rename those tools")


@dataclass
class CallLog:
    """The external tool calls made by one run's code since the run last paused."""

    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    calls: list[dict[str, Any]] = field(default_factory=list)
    made: int = 0
    parallel: bool = True
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, name: str, args: dict[str, Any]) -> str:
        """Record one call and return its id; with `parallel=False` a second call before the pause is refused."""
        with self._lock:
            if not self.parallel and self.calls:
                msg = (
                    f"{name}(...) was not sent: the caller takes one tool call at a time (parallel_tool_calls=false) "
                    f"and {self.calls[0]['name']}(...) is already waiting. Call it again after the result arrives."
                )
                raise ToolCallSent(msg)
            self._counter += 1
            call_id = f"{CALL_ID_PREFIX}_{self.session_id}_{self._counter}"
            self.calls.append({"name": name, "args": args, "id": call_id, "type": "tool_call"})
            self.made += 1
        return call_id

    def drain(self) -> list[dict[str, Any]]:
        """The calls since the last pause; the next pause's ids get a fresh prefix (ids are unique per pause)."""
        with self._lock:
            calls, self.calls = self.calls, []
            self.session_id = uuid.uuid4().hex
            self._counter = 0
        return calls


def repl_tools(tools: list[dict[str, Any]], log: CallLog) -> dict[str, Callable[..., Any]]:
    """One REPL function per OpenAI-format tool; calling it records the call in `log` and stops the block."""
    return {tool["function"]["name"]: _repl_tool(tool["function"], log) for tool in tools}


def _repl_tool(spec: dict[str, Any], log: CallLog) -> Callable[..., Any]:
    name = spec["name"]
    signature = _signature(spec.get("parameters") or {})

    def tool(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{name}{signature}: {exc}") from None
        call_id = log.record(name, _json_safe(dict(bound.arguments)))
        msg = (
            f"{name}(...) was sent to the caller as tool call {call_id!r}; this code block stops here. The "
            f"result arrives before your next turn in {RESULTS_VAR}[{call_id!r}]."
        )
        raise ToolCallSent(msg)

    tool.__name__ = name
    tool.__doc__ = (spec.get("description") or "").strip() + " (an external tool: the caller runs it)"
    tool.__signature__ = signature  # type: ignore[attr-defined]
    return tool


def _signature(parameters: dict[str, Any]) -> inspect.Signature:
    props = parameters.get("properties") or {}
    required = set(parameters.get("required") or [])
    params = []
    names = [n for n in props if n.isidentifier()]
    for pname in sorted(names, key=lambda n: n not in required):
        annotation = _TYPES.get(str((props[pname] or {}).get("type")), inspect.Parameter.empty)
        default = inspect.Parameter.empty if pname in required else None
        params.append(
            inspect.Parameter(pname, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation)
        )
    if len(names) < len(props):
        params.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(params)


def _json_safe(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))


def tools_instructions(tools: list[dict[str, Any]], choice: str | None) -> str:
    names = ", ".join(f"`{t['function']['name']}`" for t in tools)
    text = (
        f"\n\nThe caller gave you external tools, callable in the REPL like functions: {names} (see the function "
        f"list). Calling one sends the call to the caller and stops the code block; the result comes back in "
        f"`{RESULTS_VAR}[call_id]` before your next turn."
    )
    if choice == "any":
        text += " You must call one of these tools before you answer."
    elif choice is not None and choice != "none":
        text += f" You must call `{choice}` before you answer."
    return text


def schema_instructions(schema: dict[str, Any]) -> str:
    return "\n\nEnd the run with FINAL(d), where d is a dict matching this JSON schema (no extra keys):\n" + json.dumps(
        schema.get("parameters", schema), ensure_ascii=False
    )


def final_validator(
    schema: dict[str, Any] | None, pydantic_cls: Any, choice: str | None, log: CallLog
) -> Callable[[FinalAnswer], tuple[Any, str | None]] | None:
    """Refuses a final answer that breaks the output schema, or that comes before a required tool call."""
    if schema is None and choice in (None, "none"):
        return None

    def check(final: FinalAnswer) -> tuple[Any, str | None]:
        if choice not in (None, "none") and log.made == 0:
            which = "one of the external tools" if choice == "any" else f"`{choice}`"
            return None, f"Do not answer yet: the caller requires a call to {which} first (tool_choice)."
        if schema is None:
            return final.value, None
        return check_structured(final.value, schema, pydantic_cls)

    return check


def check_structured(value: Any, schema: dict[str, Any], pydantic_cls: Any) -> tuple[Any, str | None]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    if not isinstance(value, dict):
        return None, f"FINAL needs a dict matching the output schema; you passed a {type(value).__name__}."
    if pydantic_cls is not None:
        try:
            validate = getattr(pydantic_cls, "model_validate", None) or pydantic_cls.parse_obj  # pydantic.v1
            validate(value)
        except Exception as exc:
            return None, f"The answer does not match the output schema: {exc}"
        return value, None
    params = schema.get("parameters", schema)
    missing = [key for key in params.get("required") or [] if key not in value]
    if missing:
        return None, f"The answer is missing the required keys {missing} of the output schema."
    problem = _schema_problem(value, params)
    return (None, f"The answer does not match the output schema: {problem}") if problem else (value, None)


def _schema_problem(value: Any, params: dict[str, Any]) -> str | None:
    """The first JSON-schema violation of `value`, when the optional `jsonschema` package is installed."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    try:
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(params).iter_errors(value))
    except jsonschema.exceptions.SchemaError:
        return None
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "the top level"
    return f"at {where}: {error.message}"


@dataclass
class ToolSetup:
    """What one call's tools, tool choice and output schema add to a run: REPL functions, a final-answer check,
    and the instructions appended to the question."""

    tools: dict[str, Callable[..., Any]]
    validator: Callable[[FinalAnswer], tuple[Any, str | None]] | None
    instructions: str
    choice: str | None


def tool_setup(
    tools: list[dict[str, Any]] | None,
    tool_choice: Any,
    schema: dict[str, Any] | None,
    log: CallLog,
    pydantic_cls: Any = None,
) -> ToolSetup:
    """The REPL side of OpenAI-format `tools` / `tool_choice` and an output `schema` ({"name", "parameters"})."""
    tools = list(tools or [])
    names = [tool["function"]["name"] for tool in tools]
    choice = normalize_tool_choice(tool_choice, names) if tools else None
    active = tools if choice != "none" else []
    instructions = (tools_instructions(active, choice) if active else "") + (
        schema_instructions(schema) if schema is not None else ""
    )
    validator = final_validator(schema, pydantic_cls, choice, log)
    return ToolSetup(repl_tools(active, log), validator, instructions, choice)
