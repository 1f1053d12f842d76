"""A LangChain conversation as an RLM task: the text the root model sees and the `context` the REPL holds.

Message contents longer than `context_threshold` characters move into the REPL. One long message becomes
`context` (a str); several become `context` as a list of `{"role", "position", "content"}` documents, in
conversation order. The root model sees the whole conversation with a short placeholder (size, head and tail)
in place of each moved content, and the last message as the question.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}
PLACEHOLDER = (
    "[{role} message {position}: {length:,} characters, moved into the REPL as {where}. "
    "It begins: {head!r} ... and ends: {tail!r}]"
)
CONVERSATION_HEADER = "The conversation so far, oldest first (answer its last message):"
_SNIPPET = 160


@dataclass
class Task:
    """What the engine runs: the query the root model reads, and the REPL's `context` (None when nothing moved)."""

    query: str
    context: Any = None
    moved: int = 0


def message_text(message: BaseMessage) -> str:
    """The text of a message; content blocks that are not text are named, not inlined."""
    content = message.content
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


def role_of(message: BaseMessage) -> str:
    return ROLES.get(message.type, message.type)


def build_task(messages: list[BaseMessage], threshold: int) -> Task:
    """Split a conversation into the root model's view and the REPL's context (see the module docstring)."""
    texts = [message_text(m) for m in messages]
    long_ones = [i for i, text in enumerate(texts) if len(text) > threshold]
    context: Any = None
    if len(long_ones) == 1:
        context = texts[long_ones[0]]
    elif long_ones:
        context = [{"role": role_of(messages[i]), "position": i, "content": texts[i]} for i in long_ones]
    shown = list(texts)
    for slot, i in enumerate(long_ones):
        where = "`context`" if len(long_ones) == 1 else f"`context[{slot}]['content']`"
        text = texts[i]
        shown[i] = PLACEHOLDER.format(
            role=role_of(messages[i]),
            position=i,
            length=len(text),
            where=where,
            head=text[:_SNIPPET],
            tail=text[-_SNIPPET:],
        )
    if len(messages) == 1 and role_of(messages[0]) == "user":
        return Task(shown[0], context, len(long_ones))
    lines = [CONVERSATION_HEADER]
    for message, text in zip(messages, shown, strict=True):
        lines.append(f"[{_label(message)}] {text}{_tool_calls(message)}")
    return Task("\n".join(lines), context, len(long_ones))


def _label(message: BaseMessage) -> str:
    role = role_of(message)
    if isinstance(message, ToolMessage):
        return f"tool result for {message.tool_call_id}"
    name = getattr(message, "name", None)
    return f"{role} {name}" if name else role


def _tool_calls(message: BaseMessage) -> str:
    if not isinstance(message, AIMessage) or not message.tool_calls:
        return ""
    calls = ", ".join(
        f"{call['name']}({json.dumps(call['args'], ensure_ascii=False)}) [id {call.get('id')}]"
        for call in message.tool_calls
    )
    return f" (called tools: {calls})"
