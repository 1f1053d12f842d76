"""LangChain messages as the plain OpenAI-style dicts `rlm_plugins.core.conversation` splits into an RLM task.

See that module for what moves into the REPL as `context` and what the root model sees.
"""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from rlm_plugins.core.conversation import Message, Task, build_task, content_text

ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}


def message_text(message: BaseMessage) -> str:
    """The text of a message; content blocks that are not text are named, not inlined."""
    return content_text(message.content)


def role_of(message: BaseMessage) -> str:
    return ROLES.get(message.type, message.type)


def as_dict(message: BaseMessage) -> Message:
    """One message in the core's dict shape (text content, tool calls, tool-call id)."""
    out: Message = {"role": role_of(message), "content": message_text(message)}
    if isinstance(message, ToolMessage):
        out["tool_call_id"] = message.tool_call_id
    elif getattr(message, "name", None):
        out["name"] = message.name
    if isinstance(message, AIMessage) and message.tool_calls:
        out["tool_calls"] = [dict(call) for call in message.tool_calls]
    return out


def task_of(messages: list[BaseMessage], threshold: int) -> Task:
    """The RLM task for a LangChain conversation."""
    return build_task([as_dict(m) for m in messages], threshold)
