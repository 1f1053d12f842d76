"""LangChain chat models as engine ports: the root model's `complete` for `ChatPolicy`, and the `SubModel`.

A call goes through the inner model's `invoke`/`ainvoke` with the child config of the current binding, so it is
a traced child run of the ChatRLM run and uses the inner model's own LLM cache key. When nothing could observe
the call (no tracer on the ChatRLM run, no callbacks, cache or rate limiter on the inner model) it calls the
model's `_generate`/`_agenerate` directly: the answer is the same, without LangChain's per-call bookkeeping
(about 0.1 ms, which adds up over hundreds of `llm_query_batched` calls).

A provider failure (rate limit, auth, timeout: the provider SDK's exceptions) leaves a root call as the matching
`ModelError` subclass, so the engine keeps the partial result as for a litellm error, and a sub-call as a
`SubModelError`, which the engine turns into an error string in that slot.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, convert_to_messages

from rlm_plugins.core.model_errors import as_model_error, as_sub_model_error, from_provider
from rlm_plugins.core.ports import Completion, Usage
from rlm_plugins.errors import ModelError, RLMError
from rlm_plugins.langchain._callbacks import Binding


def model_label(model: BaseChatModel) -> str:
    """A short name for a chat model: its model name when it has one, else its type."""
    for attr in ("model_name", "model", "model_id", "deployment_name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return model._llm_type


def model_identity(model: BaseChatModel) -> str:
    """Everything about a chat model that changes its answers: class and cache key (its params)."""
    cls = type(model)
    return f"{cls.__module__}.{cls.__qualname__}:{model._get_llm_string()}"


def usage_of(message: BaseMessage) -> Usage:
    meta = getattr(message, "usage_metadata", None) or {}
    return Usage(1, int(meta.get("input_tokens", 0) or 0), int(meta.get("output_tokens", 0) or 0))


def _completion(message: BaseMessage, label: str) -> Completion:
    if not isinstance(message, AIMessage):
        raise ModelError(f"the inner model {label!r} returned a {type(message).__name__}, not an AIMessage")
    return Completion(message.text, usage_of(message), label)


def observed(model: BaseChatModel, binding: Binding) -> bool:
    """Whether a call to `model` must be a real LangChain run: traced, cached, rate limited or with callbacks."""
    if binding.has_tracers or model.callbacks or model.rate_limiter is not None:
        return True
    if model.cache is None:
        return get_llm_cache() is not None
    return model.cache is not False


def call(model: BaseChatModel, messages: list[BaseMessage], binding: Binding, tag: str) -> BaseMessage:
    with provider_errors(model, tag):
        if observed(model, binding):
            return model.invoke(messages, binding.child_config(tag))
        return model._generate(messages).generations[0].message


async def acall(model: BaseChatModel, messages: list[BaseMessage], binding: Binding, tag: str) -> BaseMessage:
    with provider_errors(model, tag):
        if observed(model, binding):
            return await model.ainvoke(messages, binding.child_config(tag))
        return (await model._agenerate(messages)).generations[0].message


@contextlib.contextmanager
def provider_errors(model: BaseChatModel, tag: str) -> Iterator[None]:
    """A provider failure leaves as the `ModelError` family (root) or a `SubModelError` (sub); others unchanged."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, RLMError) or not from_provider(exc):
            raise
        label = model_label(model)
        raise (as_sub_model_error(exc, label) if tag == "rlm:sub" else as_model_error(exc, label)) from exc


class RootModel:
    """`complete`/`acomplete` for `ChatPolicy`: OpenAI-format message dicts in, a `Completion` out."""

    def __init__(self, model: BaseChatModel, binding: Binding) -> None:
        self.model = model
        self.label = model_label(model)
        self.binding = binding

    def complete(self, messages: list[dict[str, Any]]) -> Completion:
        return _completion(call(self.model, convert_to_messages(messages), self.binding, "rlm:root"), self.label)

    async def acomplete(self, messages: list[dict[str, Any]]) -> Completion:
        message = await acall(self.model, convert_to_messages(messages), self.binding, "rlm:root")
        return _completion(message, self.label)


class ChatSubModel:
    """The engine's `SubModel` over a chat model: one `HumanMessage` per `llm_query` prompt."""

    def __init__(self, model: BaseChatModel, binding: Binding) -> None:
        self.model = model
        self.name = model_label(model)
        self.binding = binding

    def query(self, prompt: str) -> Completion:
        return _completion(call(self.model, [HumanMessage(prompt)], self.binding, "rlm:sub"), self.name)

    async def aquery(self, prompt: str) -> Completion:
        return _completion(await acall(self.model, [HumanMessage(prompt)], self.binding, "rlm:sub"), self.name)
