"""What the transport tests share: the messages they send, a model on a scripted server, recorded sleeps."""

from __future__ import annotations

import socket

from rlm_plugins.models import ChatModel

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]
CACHED = {"prompt_tokens_details": {"cached_tokens": 3}}
RATE_LIMITED = {"status": 429, "message": "Rate limit reached", "headers": {"Retry-After": "0.25"}}


def unused_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chat_on(server, model: str = "openai/scripted", **kwargs) -> ChatModel:
    """A `ChatModel` calling `server` (10 s timeout unless given)."""
    return ChatModel(model, api_base=server.base_url, api_key="sk-test", **{"timeout": 10, **kwargs})


class Sleeps(list):
    """Records the waits a `ChatModel` would sleep (as `sleep`, or `asleep` for async calls)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.append(seconds)
