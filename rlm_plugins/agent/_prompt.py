"""The question of each turn's root prompt: the agent's instructions, the conversation (bounded), the contexts
(described, never inlined unless asked), and the user's new message (inline when short, else only in the REPL).

An enforced agent checks every piece of context it would put into a root prompt against its threshold and raises
`ContextInPromptError` instead of putting a larger one in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlm_plugins.agent.errors import ContextInPromptError
from rlm_plugins.core.ports import ContextInfo
from rlm_plugins.core.prompts import describe_value

NEW_MESSAGE = "The user's new message (also in the REPL as `context`):"
LONG_MESSAGE = (
    "The user's new message is {size} long, too long for this prompt: it is only in the REPL, as `context`. "
    "Read it there. It begins: {head!r}"
)
CONTEXTS = "Contexts you were given (REPL variables that stay across turns; read them in code, they are not here):"
INLINE_CONTEXTS = "Contexts shown in full:"
REPLY = "Reply to the user's new message: end with FINAL(your reply), a text the user reads."
PREVIEW_CHARS = 160


@dataclass
class AgentContext:
    """A context added with `add_context`: what the prompt says of it, and its text when it is shown in full."""

    info: ContextInfo
    inline_text: str | None = None

    def to_data(self) -> dict[str, Any]:
        """Plain data for an agent file."""
        info = self.info
        return {
            "type": info.type,
            "length": info.length,
            "chunk_lengths": info.chunk_lengths,
            "preview": info.preview,
            "inline": self.inline_text,
        }

    @classmethod
    def from_data(cls, name: str, data: dict[str, Any]) -> AgentContext:
        """The context `to_data` described."""
        info = ContextInfo(name, data["type"], data["length"], data.get("chunk_lengths"), data["preview"])
        return cls(info, data.get("inline"))


def describe(name: str, value: Any) -> ContextInfo:
    """What the prompt may say of a context: type, size, a short preview."""
    return describe_value(name, value, preview_chars=PREVIEW_CHARS)


def guard(what: str, text: str, threshold: int | None) -> None:
    """Refuse to put `text` into a root prompt when it is over an enforced agent's threshold."""
    if threshold is not None and len(text) > threshold:
        msg = (
            f"{what} is {len(text):,} characters, over this enforced agent's max_prompt_context={threshold:,}: it "
            "would go into the root prompt. Keep it in the REPL instead (add_context(name, value) without "
            "inline=True; long messages go there by themselves), or raise max_prompt_context"
        )
        raise ContextInPromptError(msg)


def compose(
    message: Any,
    turn: int,
    *,
    instructions: str | None,
    memory: str,
    contexts: dict[str, AgentContext],
    inline_limit: int,
    threshold: int | None,
) -> tuple[str, str]:
    """(the question of this turn's root prompt, what the conversation memory keeps of the message)."""
    parts = [instructions.strip()] if instructions and instructions.strip() else []
    if memory:
        parts.append(memory)
    described = [_line(ctx.info) for ctx in contexts.values() if ctx.inline_text is None]
    if described:
        parts.append("\n".join([CONTEXTS, *described]))
    shown = [(name, ctx.inline_text) for name, ctx in contexts.items() if ctx.inline_text is not None]
    for name, text in shown:
        guard(f"the context {name!r}", text or "", threshold)
    if shown:
        parts.append("\n".join([INLINE_CONTEXTS, *(f"`{name}`:\n{text}" for name, text in shown)]))
    if isinstance(message, str) and len(message) <= inline_limit:
        guard("the message", message, threshold)
        parts.append(f"{NEW_MESSAGE}\n{message}")
        remembered = message
    else:
        info = describe("context", message)
        size = f"{info.length:,} {'characters' if isinstance(message, str) else 'in size'} ({info.type})"
        parts.append(LONG_MESSAGE.format(size=size, head=info.preview))
        remembered = f"(a long message of {size}, `context_{turn}` in the REPL, beginning {info.preview[:80]!r})"
    parts.append(REPLY)
    return "\n\n".join(parts), remembered


def _line(info: ContextInfo) -> str:
    unit = "bytes" if info.type.startswith("file") or info.type in ("bytes", "bytearray") else "characters"
    if info.type.startswith(("list", "tuple", "dict")):
        unit = "keys" if info.type == "dict" else "items"
    return f"- `{info.name}`: {info.type}, {info.length:,} {unit}; begins: {info.preview!r}"
