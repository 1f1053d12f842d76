"""What every transport takes and gives back: a `Call` in, a `Reply` out, the same for every provider SDK."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

Messages = list[dict[str, Any]]


@dataclass
class Call:
    """One chat request, in OpenAI's message format, before a transport turns it into its SDK's call."""

    model: str
    """The model name the provider expects (without the "provider/" prefix)."""
    messages: Messages
    params: dict[str, Any] = field(default_factory=dict)
    api_base: str | None = None
    api_key: str | None = None
    timeout: float | None = None


@dataclass
class Reply:
    """A transport's answer: the text and the token counts it reported (cost is added by the caller)."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class Transport(Protocol):
    """Sends a `Call` through one provider SDK; raises the SDK's own exceptions (the caller maps them)."""

    name: str

    def complete(self, call: Call) -> Reply: ...
    async def acomplete(self, call: Call) -> Reply: ...

    def key_env(self) -> str | None:
        """The environment variable the provider's key comes from, for error messages (None when unknown)."""
        return None


def as_int(value: Any) -> int:
    """An SDK's token count as an int (None and missing become 0)."""
    return int(value) if isinstance(value, (int, float)) else 0


def openai_reply(response: Any) -> Reply:
    """A `Reply` from an OpenAI-format chat completion (the openai SDK's object or litellm's ModelResponse)."""
    choices = getattr(response, "choices", None) or []
    message = getattr(choices[0], "message", None) if choices else None
    text = getattr(message, "content", None) or ""
    usage = getattr(response, "usage", None)
    details = getattr(usage, "prompt_tokens_details", None)
    cached = as_int(getattr(details, "cached_tokens", None)) or as_int(getattr(usage, "cache_read_input_tokens", None))
    return Reply(
        text=text if isinstance(text, str) else str(text),
        input_tokens=as_int(getattr(usage, "prompt_tokens", None)),
        output_tokens=as_int(getattr(usage, "completion_tokens", None)),
        cached_tokens=cached,
        cache_write_tokens=as_int(getattr(usage, "cache_creation_input_tokens", None)),
    )
