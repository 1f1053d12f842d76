"""A `POST /v1/chat/completions` body checked field by field into a `ChatRequest` (bad input: a 400 naming it).

Per-request budgets come through `extra_body` (the openai SDK merges it into the JSON body): `max_iterations`,
`max_llm_calls`, `max_time`, `max_cost`. They must be positive numbers and are capped by the server's maxima.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rlm_plugins.core.conversation import call_parts
from rlm_plugins.core.external_tools import check_tool_names, normalize_tool_choice
from rlm_plugins.errors import ConfigurationError
from rlm_plugins.server.config import ServerConfig
from rlm_plugins.server.errors import bad_request

ROLES = ("system", "developer", "user", "assistant", "tool")
OVERRIDES = {"max_iterations": int, "max_llm_calls": int, "max_time": float, "max_cost": float}


@dataclass
class ChatRequest:
    """What a chat-completions request asks for, validated."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    include_usage: bool = False
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = None
    parallel_tool_calls: bool = True
    schema: dict[str, Any] | None = None
    stop: list[str] = field(default_factory=list)
    overrides: dict[str, float] = field(default_factory=dict)


def parse_chat(body: Any, config: ServerConfig) -> ChatRequest:
    """Validate a decoded JSON body; raises `APIError` (400) naming the first bad field."""
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object", code="invalid_body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("'model' is required: the name of a served model (GET /v1/models lists them)", "model")
    messages = _messages(body.get("messages"))
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise bad_request("'stream_options' must be an object such as {\"include_usage\": true}", "stream_options")
    n = body.get("n")
    if n not in (None, 1):
        raise bad_request("this server returns one choice per request; drop 'n' or set it to 1", "n")
    tools = _tools(body.get("tools"))
    choice = body.get("tool_choice")
    if tools:
        try:
            normalize_tool_choice(choice, [t["function"]["name"] for t in tools])
        except ConfigurationError as exc:
            raise bad_request(str(exc), "tool_choice") from None
    elif choice not in (None, "none", "auto"):
        raise bad_request("'tool_choice' needs 'tools'", "tool_choice")
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise bad_request("'parallel_tool_calls' must be true or false", "parallel_tool_calls")
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=bool(options.get("include_usage")),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel is not False,
        schema=_schema(body.get("response_format")),
        stop=_stop(body.get("stop")),
        overrides=_overrides(body, config),
    )


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise bad_request("'messages' must be a non-empty array of messages", "messages")
    calls: set[str] = set()
    out = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request(f"{where} must be an object with 'role' and 'content'", where)
        role = message.get("role")
        if role not in ROLES:
            raise bad_request(f"{where}.role is {role!r}; use one of {list(ROLES)}", f"{where}.role")
        content = message.get("content")
        if not (content is None or isinstance(content, (str, list))):
            raise bad_request(f"{where}.content must be a string or an array of content parts", f"{where}.content")
        if content is None and not (role == "assistant" and message.get("tool_calls")):
            raise bad_request(f"{where}.content is required", f"{where}.content")
        clean = {"role": role, "content": content}
        if isinstance(message.get("name"), str):
            clean["name"] = message["name"]
        if role == "assistant" and message.get("tool_calls") is not None:
            clean["tool_calls"] = _calls(message["tool_calls"], where)
            calls.update(call["id"] for call in clean["tool_calls"])
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in calls:
                msg = f"{where} is a tool result for {call_id!r}, which no earlier assistant message called"
                raise bad_request(msg, f"{where}.tool_call_id", "tool_call_not_found")
            clean["tool_call_id"] = call_id
        out.append(clean)
    return out


def _calls(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise bad_request(f"{where}.tool_calls must be an array", f"{where}.tool_calls")
    for j, call in enumerate(value):
        name, _, call_id = call_parts(call) if isinstance(call, dict) else ("", None, None)
        if not name or not isinstance(call_id, str):
            msg = f"{where}.tool_calls[{j}] needs an 'id' and a 'function' with a 'name'"
            raise bad_request(msg, f"{where}.tool_calls[{j}]")
    return value


def _tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad_request('\'tools\' must be an array of {"type": "function", "function": {...}}', "tools")
    for i, tool in enumerate(value):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(function, dict):
            raise bad_request(f'tools[{i}] must be {{"type": "function", "function": {{...}}}}', f"tools[{i}]")
        if not isinstance(function.get("name"), str):
            raise bad_request(f"tools[{i}].function.name is required", f"tools[{i}].function.name")
        if not isinstance(function.get("parameters", {}), dict):
            raise bad_request(f"tools[{i}].function.parameters must be a JSON schema", f"tools[{i}].function")
    try:
        check_tool_names([tool["function"]["name"] for tool in value])
    except ConfigurationError as exc:
        raise bad_request(str(exc), "tools") from None
    return value


def _schema(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"name": "json_object", "parameters": {"type": "object"}}
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            msg = 'response_format.json_schema must be {"name": ..., "schema": {...}}'
            raise bad_request(msg, "response_format.json_schema")
        return {"name": str(spec.get("name") or "response"), "parameters": spec.get("schema") or {"type": "object"}}
    msg = "response_format.type must be 'text', 'json_object' or 'json_schema'"
    raise bad_request(msg, "response_format")


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise bad_request("'stop' must be a string or an array of strings", "stop")


def _overrides(body: dict[str, Any], config: ServerConfig) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, kind in OVERRIDES.items():
        value = body.get(name)
        if value is None:
            continue
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        if not ok or (kind is int and value != int(value)):
            raise bad_request(f"'{name}' must be a positive {'integer' if kind is int else 'number'}", name)
        cap = getattr(config, f"limit_{name}")
        out[name] = kind(value if cap is None else min(value, cap))
    return out
