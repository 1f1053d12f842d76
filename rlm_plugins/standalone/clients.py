"""Clients in the official `rlms` shape (`model_name`, `completion`, usage summaries), and the ports over them.

`get_client(backend, backend_kwargs)` is what `RLM(backend=...)` calls for its root and sub models, as the official
package does; it returns a `BackendClient` over our `ChatModel`. Any object with that shape (an official `BaseLM`, a
test double) works as well: `client_policy` and `ClientSubModel` turn it into the engine's ports, reading usage from
its `get_last_usage()`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from rlm_plugins.core.chat_policy import AComplete, Complete, Message
from rlm_plugins.core.ports import Completion, Usage
from rlm_plugins.core.result import ModelUsageSummary, UsageSummary
from rlm_plugins.errors import ConfigurationError, ModelError, SubModelError
from rlm_plugins.models.chat import ChatModel

BACKEND_PREFIX = {
    "openai": "openai",
    "anthropic": "anthropic",
    "openrouter": "openrouter",
    "portkey": "openai",
    "vllm": "hosted_vllm",
    "litellm": "",
    "azure_openai": "azure",
    "gemini": "gemini",
}


def backend_model(backend: str, kwargs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Translate an official `backend` + `backend_kwargs` pair into a model string and `ChatModel` options.

    `sampling_args` (the official place for temperature, top_p, max_tokens, seed, ...) become call parameters.
    """
    if backend not in BACKEND_PREFIX:
        msg = (
            f"backend={backend!r} is not supported; use one of {sorted(BACKEND_PREFIX)} or pass model='provider/model'"
        )
        raise ConfigurationError(msg)
    rest = dict(kwargs)
    name = rest.pop("model_name", None) or rest.pop("model", None)
    if not name:
        raise ConfigurationError("backend_kwargs needs 'model_name' (e.g. {'model_name': 'gpt-5-mini'})")
    if "base_url" in rest:
        rest["api_base"] = rest.pop("base_url")
    rest.update(rest.pop("sampling_args", None) or {})
    prefix = BACKEND_PREFIX[backend]
    return (f"{prefix}/{name}" if prefix and not name.startswith(prefix + "/") else name), rest


def model_name(backend_kwargs: Mapping[str, Any] | None) -> str:
    """The model's name as the official package reports it (its `backend_kwargs["model_name"]`)."""
    kwargs = backend_kwargs or {}
    return str(kwargs.get("model_name") or kwargs.get("model") or "unknown")


class BackendClient:
    """An official-style client over a `ChatModel`: `completion(prompt) -> str` plus usage summaries.

    Args:
        backend: an official backend name ("openai", "anthropic", "openrouter", "vllm", ...).
        backend_kwargs: `model_name`, `api_key`, `base_url`, `sampling_args` and other `ChatModel` options.
    """

    def __init__(self, backend: str, backend_kwargs: Mapping[str, Any] | None = None) -> None:
        model, options = backend_model(backend, backend_kwargs or {})
        self.chat = ChatModel(model, **options)
        self.model_name = model_name(backend_kwargs)
        self._total = Usage()
        self._last = Usage()

    def complete(self, messages: list[Message] | str) -> Completion:
        """One call; the `Completion` carries tokens and cost, under this client's `model_name`."""
        return self._record(self.chat(messages))

    async def acomplete(self, messages: list[Message] | str) -> Completion:
        """The async twin of `complete`."""
        return self._record(await self.chat.acall(messages))

    def completion(self, prompt: list[Message] | str) -> str:
        """The official `BaseLM.completion`: the reply's text."""
        return self.complete(prompt).text

    async def acompletion(self, prompt: list[Message] | str) -> str:
        """The official `BaseLM.acompletion`."""
        return (await self.acomplete(prompt)).text

    def get_usage_summary(self) -> UsageSummary:
        """Every call of this client so far, keyed by `model_name`."""
        return UsageSummary.from_usage({self.model_name: self._total})

    def get_last_usage(self) -> ModelUsageSummary:
        """The last call's usage."""
        return UsageSummary.from_usage({self.model_name: self._last}).model_usage_summaries[self.model_name]

    def _record(self, completion: Completion) -> Completion:
        usage = completion.usage or Usage(calls=1)
        self._last = usage.copy()
        self._total.add(usage)
        return dataclasses.replace(completion, model=self.model_name)


def get_client(backend: str, backend_kwargs: Mapping[str, Any] | None = None) -> BackendClient:
    """The client for an official `backend` / `backend_kwargs` pair (the official package's `get_client`)."""
    return BackendClient(backend, backend_kwargs)


def client_name(client: Any, backend_kwargs: Mapping[str, Any] | None = None) -> str:
    """A client's `model_name` when it has a textual one, else the `backend_kwargs` model name."""
    name = getattr(client, "model_name", None)
    return name if isinstance(name, str) and name else model_name(backend_kwargs)


def client_policy(client: Any, name: str) -> tuple[Complete, AComplete | None]:
    """The `complete` / `acomplete` pair a `ChatPolicy` needs, over an official-style client."""
    if isinstance(client, BackendClient):
        return client.complete, client.acomplete

    def complete(messages: list[Message]) -> Completion:
        try:
            text = client.completion(messages)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"the {name} client failed: {exc}").with_cause(exc) from None
        return Completion(str(text), last_usage(client), name)

    return complete, None


class ClientSubModel:
    """The SubModel port (what `llm_query` calls) over an official-style client; `name` keys its usage."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def query(self, prompt: str) -> Completion:
        """One sub-call: `prompt` goes to the client's `completion` as the official handler sends it."""
        try:
            if isinstance(self.client, BackendClient):
                return self.client.complete(prompt)
            text = self.client.completion(prompt)
        except Exception as exc:
            raise SubModelError(f"the {self.name} sub-model failed: {exc}").with_cause(exc) from None
        return Completion(str(text), last_usage(self.client), self.name)

    async def aquery(self, prompt: str) -> Completion:
        """The async twin of `query`."""
        if not isinstance(self.client, BackendClient):
            import asyncio

            return await asyncio.to_thread(self.query, prompt)
        try:
            return await self.client.acomplete(prompt)
        except Exception as exc:
            raise SubModelError(f"the {self.name} sub-model failed: {exc}").with_cause(exc) from None


def last_usage(client: Any) -> Usage:
    """The usage of a client's last call from its `get_last_usage()` (a `ModelUsageSummary`, or a `UsageSummary`
    whose models are summed); one call of unknown size when it reports nothing usable."""
    try:
        report = client.get_last_usage()
    except Exception:
        return Usage(calls=1)
    parts = getattr(report, "model_usage_summaries", None)
    summaries = list(parts.values()) if isinstance(parts, dict) else [report]
    usage = Usage(calls=1)
    for summary in summaries:
        usage.input_tokens += _number(getattr(summary, "total_input_tokens", 0))
        usage.output_tokens += _number(getattr(summary, "total_output_tokens", 0))
        cost = getattr(summary, "total_cost", None)
        if isinstance(cost, (int, float)):
            usage.cost = (usage.cost or 0.0) + cost
    return usage


def _number(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0
