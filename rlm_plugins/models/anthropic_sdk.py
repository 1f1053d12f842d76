"""The `anthropic` SDK transport: OpenAI-format messages become a Messages API call with prompt-cache breakpoints.

The system prompt and the last user message carry `cache_control` marks, so each root turn reads the previous
turn's prompt from Anthropic's cache (the request is the previous one plus appended messages) and writes the new
end of it. Clients are pooled like the openai transport's: one sync client per (base URL, key), one async client
per event loop.
"""

from __future__ import annotations

import os
from typing import Any

from rlm_plugins.models._pool import ClientPool
from rlm_plugins.models.base import Call, Reply, as_int

DEFAULT_MAX_TOKENS = 8192
"""The Messages API requires `max_tokens`; this is sent when the caller gives none."""
EPHEMERAL = {"type": "ephemeral"}

_POOL = ClientPool("anthropic", "Anthropic", "AsyncAnthropic")


class AnthropicTransport:
    """Claude models through the `anthropic` SDK, with cache breakpoints (`cache_prompts=False` leaves them out)."""

    name = "anthropic"

    def __init__(self, cache_prompts: bool = True) -> None:
        import anthropic  # noqa: F401  (fail at construction when the SDK is missing)

        self.cache_prompts = cache_prompts

    def __repr__(self) -> str:
        return "AnthropicTransport()"

    def key_env(self) -> str | None:
        return "ANTHROPIC_API_KEY"

    @staticmethod
    def _endpoint(call: Call) -> tuple[str | None, str | None]:
        base = call.api_base or os.environ.get("ANTHROPIC_BASE_URL")
        return base, call.api_key or os.environ.get("ANTHROPIC_API_KEY")

    def sync_client(self, call: Call) -> Any:
        """The process's `Anthropic` client for this call's endpoint and key."""
        return _POOL.sync(self._endpoint(call))

    def async_client(self, call: Call) -> Any:
        """The running loop's `AsyncAnthropic` client for this call's endpoint and key."""
        return _POOL.for_loop(self._endpoint(call))

    def request(self, call: Call) -> dict[str, Any]:
        """The Messages API arguments for `call`: system blocks apart, `stop` as `stop_sequences`."""
        params = dict(call.params)
        params.setdefault("max_tokens", params.pop("max_completion_tokens", None) or DEFAULT_MAX_TOKENS)
        if "stop" in params:
            stop = params.pop("stop")
            params["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        system = [_block(m.get("content")) for m in call.messages if m.get("role") == "system"]
        messages = [
            {"role": m.get("role"), "content": [_block(m.get("content"))]}
            for m in call.messages
            if m.get("role") != "system"
        ]
        if self.cache_prompts:
            for blocks in ([system[-1]] if system else [], _last_user(messages)):
                for block in blocks[-1:]:
                    block["cache_control"] = dict(EPHEMERAL)
        request: dict[str, Any] = {"model": call.model, "messages": messages, **params}
        if system:
            request["system"] = system
        if call.timeout is not None:
            request["timeout"] = call.timeout
        return request

    def complete(self, call: Call) -> Reply:
        """One Messages API call on the pooled sync client."""
        return anthropic_reply(self.sync_client(call).messages.create(**self.request(call)))

    async def acomplete(self, call: Call) -> Reply:
        """One Messages API call on the running loop's pooled async client."""
        return anthropic_reply(await self.async_client(call).messages.create(**self.request(call)))


def _block(content: Any) -> dict[str, Any]:
    if isinstance(content, list):
        text = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    else:
        text = "" if content is None else str(content)
    return {"type": "text", "text": text}


def _last_user(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for message in reversed(messages):
        if message["role"] == "user":
            return message["content"]
    return []


def anthropic_reply(response: Any) -> Reply:
    """A `Reply` from a Messages API response; input tokens count the cached and cache-written ones too."""
    text = "".join(
        getattr(block, "text", "") or "" for block in getattr(response, "content", None) or [] if _is_text(block)
    )
    usage = getattr(response, "usage", None)
    read = as_int(getattr(usage, "cache_read_input_tokens", None))
    written = as_int(getattr(usage, "cache_creation_input_tokens", None))
    return Reply(
        text=text,
        input_tokens=as_int(getattr(usage, "input_tokens", None)) + read + written,
        output_tokens=as_int(getattr(usage, "output_tokens", None)),
        cached_tokens=read,
        cache_write_tokens=written,
    )


def _is_text(block: Any) -> bool:
    return getattr(block, "type", "text") == "text"
