"""The `openai` SDK transport, for OpenAI and every OpenAI-compatible server (vLLM, llama.cpp, OpenRouter, ...).

Clients are pooled per (base URL, key): one `OpenAI` client for the whole process, and one `AsyncOpenAI` client
per event loop (an async HTTP pool belongs to the loop that opened its connections), so every call after the
first reuses warm keep-alive connections. The SDK's own retries are off: `ChatModel` retries, once, for all
transports.
"""

from __future__ import annotations

import os
from typing import Any

from rlm_plugins.models._pool import ClientPool
from rlm_plugins.models.base import Call, Reply, openai_reply

PROVIDERS: dict[str, tuple[str | None, str | None]] = {
    "openai": (None, "OPENAI_API_KEY"),
    "openrouter": ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "hosted_vllm": (None, "HOSTED_VLLM_API_KEY"),
    "lm_studio": (None, "LM_STUDIO_API_KEY"),
    "llamafile": (None, "LLAMAFILE_API_KEY"),
    "deepseek": ("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "xai": ("https://api.x.ai/v1", "XAI_API_KEY"),
}
"""OpenAI-compatible providers: default base URL (None: the SDK's, or `<PROVIDER>_API_BASE`) and key variable."""

_LOCAL_KEY = "sk-no-key"
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")

_POOL = ClientPool("openai", "OpenAI", "AsyncOpenAI")


class OpenAIFormat:
    """What the OpenAI-format transports share: the provider whose default endpoint and key variable they use."""

    def __init__(self, provider: str = "openai") -> None:
        self.provider = provider if provider in PROVIDERS else "openai"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.provider!r})"

    def key_env(self) -> str | None:
        return PROVIDERS[self.provider][1]


class OpenAITransport(OpenAIFormat):
    """Chat completions through the `openai` SDK, with pooled clients. `provider` picks the default endpoint."""

    name = "openai"

    def __init__(self, provider: str = "openai") -> None:
        import openai  # noqa: F401  (fail at construction when the SDK is missing)

        super().__init__(provider)

    def sync_client(self, call: Call) -> Any:
        """The process's `OpenAI` client for this call's endpoint and key."""
        return _POOL.sync(endpoint(self.provider, call))

    def async_client(self, call: Call) -> Any:
        """The running loop's `AsyncOpenAI` client for this call's endpoint and key."""
        return _POOL.for_loop(endpoint(self.provider, call))

    def complete(self, call: Call) -> Reply:
        """One chat completion on the pooled sync client."""
        return openai_reply(self.sync_client(call).chat.completions.create(**sdk_kwargs(call)))

    async def acomplete(self, call: Call) -> Reply:
        """One chat completion on the running loop's pooled async client."""
        return openai_reply(await self.async_client(call).chat.completions.create(**sdk_kwargs(call)))


def endpoint(provider: str, call: Call) -> tuple[str | None, str | None]:
    """(base URL, key) for `call` to an OpenAI-compatible `provider`: the call's, else the environment's."""
    default_base, key_env = PROVIDERS[provider]
    env_prefix = provider.upper()
    base = call.api_base or os.environ.get(f"{env_prefix}_API_BASE") or os.environ.get(f"{env_prefix}_BASE_URL")
    key = call.api_key or (os.environ.get(key_env) if key_env else None)
    if provider != "openai" and key is None:
        key = _LOCAL_KEY
    return base or default_base, key


def request_params(call: Call) -> dict[str, Any]:
    """The call's parameters as chat-completion arguments (`max_tokens` renamed for reasoning models)."""
    params = dict(call.params)
    if call.model.startswith(_REASONING_PREFIXES) and "max_tokens" in params:
        params.setdefault("max_completion_tokens", params.pop("max_tokens"))
    return params


def sdk_kwargs(call: Call) -> dict[str, Any]:
    """`chat.completions.create` arguments: names it does not take go to the server in `extra_body`."""
    params = request_params(call)
    extra = {key: params.pop(key) for key in list(params) if key not in _SDK_PARAMS}
    if extra:
        params["extra_body"] = {**extra, **params.get("extra_body", {})}
    if call.timeout is not None:
        params["timeout"] = call.timeout
    return {"model": call.model, "messages": call.messages, **params}


_SDK_PARAMS = frozenset(
    {
        "audio",
        "extra_body",
        "extra_headers",
        "extra_query",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
    }
)
"""Arguments `chat.completions.create` takes by name; anything else goes to the server in `extra_body`."""
