"""A chat conversation as an RLM task: the text the root model sees and the `context` the REPL holds.

Messages are plain OpenAI-style dicts: `role`, `content` (a str, None, or a list of content parts), and optionally
`name`, `tool_calls` (OpenAI `{"id", "function": {"name", "arguments"}}` or LangChain `{"id", "name", "args"}`)
and `tool_call_id`. Adapters (ChatRLM, the server) convert their messages to this shape and share this code.

Message contents longer than `threshold` characters move into the REPL. One long message becomes `context` (a
str); several become `context` as a list of `{"role", "position", "content"}` documents, in conversation order.
The root model sees the whole conversation with a short placeholder (size, head and tail) in place of each moved
content, and the last message as the question.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PLACEHOLDER = (
    "[{role} message {position}: {length:,} characters, moved into the REPL as {where}. "
    "It begins: {head!r} ... and ends: {tail!r}]"
)
CONVERSATION_HEADER = "The conversation so far, oldest first (answer its last message):"
_SNIPPET = 160
Message = dict[str, Any]


@dataclass
class Task:
    """What the engine runs: the query the root model reads, and the REPL's `context` (None when nothing moved)."""

    query: str
    context: Any = None
    moved: int = 0


def content_text(content: Any) -> str:
    """The text of a message content; parts that are not text are named, not inlined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict):
            kind = block.get("type")
            if kind == "text" or (kind is None and "text" in block):
                parts.append(str(block.get("text", "")))
            elif kind in ("tool_use", "tool_call", "reasoning", "thinking"):
                continue
            else:
                parts.append(f"[{kind or 'non-text'} content omitted]")
    return "".join(parts)


def call_parts(call: dict[str, Any]) -> tuple[str, Any, str | None]:
    """(name, arguments, id) of a tool call in OpenAI or LangChain shape; OpenAI's JSON arguments are parsed."""
    function = call.get("function")
    if isinstance(function, dict):
        args: Any = function.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                pass
        return str(function.get("name", "")), args, call.get("id")
    return str(call.get("name", "")), call.get("args"), call.get("id")


def build_task(messages: Sequence[Message], threshold: int) -> Task:
    """Split a conversation into the root model's view and the REPL's context (see the module docstring)."""
    texts = [content_text(m.get("content")) for m in messages]
    long_ones = [i for i, text in enumerate(texts) if len(text) > threshold]
    context: Any = None
    if len(long_ones) == 1:
        context = texts[long_ones[0]]
    elif long_ones:
        context = [{"role": messages[i]["role"], "position": i, "content": texts[i]} for i in long_ones]
    shown = list(texts)
    for slot, i in enumerate(long_ones):
        where = "`context`" if len(long_ones) == 1 else f"`context[{slot}]['content']`"
        text = texts[i]
        shown[i] = PLACEHOLDER.format(
            role=messages[i]["role"],
            position=i,
            length=len(text),
            where=where,
            head=text[:_SNIPPET],
            tail=text[-_SNIPPET:],
        )
    if len(messages) == 1 and messages[0]["role"] == "user":
        return Task(shown[0], context, len(long_ones))
    lines = [CONVERSATION_HEADER]
    for message, text in zip(messages, shown, strict=True):
        lines.append(f"[{_label(message)}] {text}{_tool_calls(message)}")
    return Task("\n".join(lines), context, len(long_ones))


def fingerprint(messages: Sequence[Message]) -> str:
    """A digest of a conversation (roles, texts, names, tool-call ids) that a continuation must reproduce."""
    digest = hashlib.sha256()
    for message in messages:
        ids = [call_parts(call)[2] for call in message.get("tool_calls") or []]
        item = [message.get("role"), content_text(message.get("content")), message.get("name"), ids]
        item.append(message.get("tool_call_id"))
        digest.update(json.dumps(item, ensure_ascii=False, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _label(message: Message) -> str:
    role = message["role"]
    if role == "tool":
        return f"tool result for {message.get('tool_call_id')}"
    name = message.get("name")
    return f"{role} {name}" if name else role


def _tool_calls(message: Message) -> str:
    calls = message.get("tool_calls") if message["role"] == "assistant" else None
    if not calls:
        return ""
    shown = []
    for call in calls:
        name, args, call_id = call_parts(call)
        shown.append(f"{name}({json.dumps(args, ensure_ascii=False)}) [id {call_id}]")
    return f" (called tools: {', '.join(shown)})"
