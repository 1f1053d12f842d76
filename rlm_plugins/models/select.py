"""Which transport serves a model string: for OpenAI-compatible providers the lean HTTP transport when an `api_base`
is given (self-hosted and compatible servers, where the client's own cost per call shows) and the `openai` SDK
otherwise, the `anthropic` SDK for Claude, litellm for everything else (and when those clients are not installed)."""

from __future__ import annotations

import importlib.util
from typing import Any

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.models.base import Transport

TRANSPORTS = ("auto", "openai", "http", "anthropic", "litellm")
_OPENAI_BARE = ("gpt-", "o1", "o3", "o4", "chatgpt-")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def split_model(model: str) -> tuple[str | None, str]:
    """("provider", "name") of a "provider/name" string; (None, model) when it has no prefix."""
    provider, sep, name = model.partition("/")
    return (provider, name) if sep and name else (None, model)


def transport_name(model: str, transport: str = "auto", api_base: str | None = None) -> str:
    """The transport `choose_transport` picks for `model` (at `api_base`): "openai", "http", "anthropic" or
    "litellm"."""
    from rlm_plugins.models.openai_sdk import PROVIDERS

    if transport not in TRANSPORTS:
        msg = f"transport={transport!r} is not one of {list(TRANSPORTS)}; pass 'auto' to choose by the model string"
        raise ConfigurationError(msg)
    if transport != "auto":
        return transport
    provider, name = split_model(model)
    if provider is None:
        provider = "openai" if name.startswith(_OPENAI_BARE) else "anthropic" if name.startswith("claude") else None
    if provider in PROVIDERS and api_base and _installed("aiohttp"):
        return "http"
    if provider in PROVIDERS and _installed("openai"):
        return "openai"
    if provider == "anthropic" and _installed("anthropic"):
        return "anthropic"
    return "litellm"


def choose_transport(model: str, transport: str | Transport = "auto", **options: Any) -> tuple[Transport, str]:
    """The transport for `model` and the model name to send it (litellm keeps the prefix, SDKs drop it)."""
    if not isinstance(transport, str):
        return transport, model
    kind = transport_name(model, transport, options.get("api_base"))
    provider, name = split_model(model)
    if kind == "http":
        from rlm_plugins.models.http_transport import HTTPTransport

        return HTTPTransport(provider or "openai"), name
    if kind == "openai":
        from rlm_plugins.models.openai_sdk import OpenAITransport

        return OpenAITransport(provider or "openai"), name
    if kind == "anthropic":
        from rlm_plugins.models.anthropic_sdk import AnthropicTransport

        return AnthropicTransport(cache_prompts=options.get("cache_prompts", True)), name
    from rlm_plugins.models.litellm_sdk import LiteLLMTransport

    return LiteLLMTransport(), model
