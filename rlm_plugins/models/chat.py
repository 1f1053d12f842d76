"""`ChatModel`: a chat model behind the transport its model string calls for, with retries, shared limits,
and usage and cost reported the same way whichever SDK answered; `ChatSubModel` is the SubModel port over it."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from rlm_plugins.core.model_errors import kind_of
from rlm_plugins.core.ports import Completion, Usage
from rlm_plugins.errors import ConfigurationError, ModelError, SubModelError
from rlm_plugins.models.base import Call, Messages, Reply, Transport
from rlm_plugins.models.errors import describe
from rlm_plugins.models.limits import shared_limits
from rlm_plugins.models.pricing import price
from rlm_plugins.models.retry import RetryPolicy
from rlm_plugins.models.select import choose_transport

DEFAULT_RETRIES = 2
_LITELLM_ONLY = frozenset({"drop_params", "caching", "custom_llm_provider", "mock_response", "api_version"})


class ChatModel:
    """A chat model: OpenAI-format messages in, a `Completion` (text, tokens, cached tokens, USD cost) out.

    The transport follows the model string: "openai/..." and OpenAI-compatible providers ("openrouter/",
    "hosted_vllm/", ...) go through the lean HTTP transport when `api_base` names the server (a fraction of the
    SDK's client cost per call) and through the `openai` SDK otherwise, "anthropic/..." through the `anthropic`
    SDK when it is installed, everything else through litellm. Clients are pooled per endpoint and key,
    so every run in the process reuses warm connections.

    Args:
        model: "provider/name", e.g. "openai/gpt-5-mini", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-pro".
        api_base: the endpoint to call instead of the provider's default.
        api_key: the key to send instead of the provider's env var.
        transport: "auto", "openai", "http", "anthropic" or "litellm" (or a `Transport` object).
        max_retries: retries on 429, 5xx, timeouts and dropped connections, honouring `Retry-After`
            (`num_retries=` is accepted as its alias).
        timeout: seconds per attempt.
        max_concurrency: calls to this model in flight at once, process-wide.
        rpm: requests per minute for this model, process-wide (a client-side limit: calls queue, they never fail).
        tpm: tokens per minute for this model, process-wide.
        cache_prompts: mark prompt-cache breakpoints for providers that need them (Anthropic).
        **params: sent with every call (temperature, max_tokens, ...).

    Raises:
        ConfigurationError: `model` is empty, an option is invalid, or the transport's SDK is not installed.

    Examples:
        >>> chat = ChatModel("openai/gpt-5-mini", max_concurrency=32, rpm=500)  # doctest: +SKIP
        >>> chat([{"role": "user", "content": "Say hi"}]).text  # doctest: +SKIP
        'Hi!'
    """

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        transport: str | Transport = "auto",
        max_retries: int | None = None,
        timeout: float | None = None,
        max_concurrency: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        cache_prompts: bool = True,
        **params: Any,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            msg = f'model must be a model string such as "openai/gpt-4o-mini", got {model!r}'
            raise ConfigurationError(msg)
        retries = params.pop("num_retries", None)
        if max_retries is None:
            max_retries = DEFAULT_RETRIES if retries is None else retries
        self.retry = RetryPolicy(max_retries)
        self.model = model
        self.api_base = api_base
        self.api_key = api_key
        self.timeout = timeout
        self.transport, self.provider_model = choose_transport(
            model, transport, cache_prompts=cache_prompts, api_base=api_base
        )
        if self.transport.name != "litellm":
            params = {k: v for k, v in params.items() if k not in _LITELLM_ONLY}
        self.params = params
        self.limits = shared_limits(f"{model}@{api_base or ''}", max_concurrency=max_concurrency, rpm=rpm, tpm=tpm)
        self.sleep: Callable[[float], Any] = time.sleep
        self.asleep: Callable[[float], Any] = asyncio.sleep

    def __repr__(self) -> str:
        base = f", api_base={self.api_base!r}" if self.api_base else ""
        return f"{type(self).__name__}({self.model!r}{base}, transport={self.transport.name!r})"

    @property
    def cache_key(self) -> str:
        """What makes two calls' answers interchangeable: the model, its endpoint and its parameters."""
        return json.dumps([self.model, self.api_base, self.params], sort_keys=True, default=repr)

    def __call__(self, messages: Messages | str, **overrides: Any) -> Completion:
        """Call the model once (retrying as configured); keyword arguments override `params` for this call.

        Raises:
            ModelError: The call failed; the message says what to change.
        """
        call = self._call(messages, overrides)
        tokens = _estimate(call)
        for attempt in itertools.count():
            try:
                reply = self._send(call, tokens)
            except Exception as exc:
                self.sleep(self._wait(attempt, exc))
            else:
                return self._completion(reply, tokens)

    async def acall(self, messages: Messages | str, **overrides: Any) -> Completion:
        """Async twin of `__call__`: awaits the async SDK client, never a thread."""
        call = self._call(messages, overrides)
        tokens = _estimate(call)
        for attempt in itertools.count():
            try:
                reply = await self._asend(call, tokens)
            except Exception as exc:
                await self.asleep(self._wait(attempt, exc))
            else:
                return self._completion(reply, tokens)

    def _send(self, call: Call, tokens: int) -> Reply:
        """One attempt within the model's shared rate and concurrency limits."""
        rate, gate = self.limits.rate, self.limits.gate
        if rate is not None:
            rate.acquire(tokens)
        if gate is None:
            return self.transport.complete(call)
        gate.acquire()
        try:
            return self.transport.complete(call)
        finally:
            gate.release()

    async def _asend(self, call: Call, tokens: int) -> Reply:
        """Async twin of `_send`."""
        rate, gate = self.limits.rate, self.limits.gate
        if rate is not None:
            await rate.aacquire(tokens)
        if gate is None:
            return await self.transport.acomplete(call)
        await gate.aacquire()
        try:
            return await self.transport.acomplete(call)
        finally:
            gate.release()

    def _wait(self, attempt: int, exc: Exception) -> float:
        """Seconds to wait before retrying after `exc`; raises the `ModelError` when it must not be retried."""
        wait = self.retry.delay(attempt, exc)
        if wait is None:
            raise kind_of(exc)(self.describe(exc)).with_cause(exc) from None
        return wait

    def _call(self, messages: Messages | str, overrides: dict[str, Any]) -> Call:
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        params = {**self.params, **overrides}
        timeout = params.pop("timeout", self.timeout)
        return Call(self.provider_model, messages, params, self.api_base, self.api_key, timeout)

    def _completion(self, reply: Reply, reserved: int) -> Completion:
        if self.limits.rate is not None:
            self.limits.rate.settle(reserved, reply.input_tokens + reply.output_tokens)
        cost = price(self.model, reply.input_tokens, reply.output_tokens, reply.cached_tokens, reply.cache_write_tokens)
        usage = Usage(
            calls=1,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            cost=cost,
            cached_input_tokens=reply.cached_tokens,
        )
        return Completion(text=reply.text, usage=usage, model=self.model)

    def describe(self, exc: BaseException) -> str:
        """The one-line message of the `ModelError` that `exc` becomes."""
        return describe(exc, self.model, api_base=self.api_base, timeout=self.timeout, key_hint=self._key_hint)

    def _key_hint(self) -> str:
        if self.api_key is not None:
            return "check the key passed as api_key="
        env = self.transport.key_env()
        missing = [env] if env else getattr(self.transport, "missing_keys", lambda model: [])(self.model)
        names = " or ".join(missing) if missing else "the provider's API key env var"
        return f"set {names} or pass api_key="


class ChatSubModel:
    """The SubModel port over a `ChatModel`: what `llm_query(prompt)` calls, one user message per prompt.

    Args:
        chat: a `ChatModel`, or a model string to build one from.
        **options: with a model string, passed to `ChatModel` (api_base, api_key, temperature, ...).

    Examples:
        >>> sub = ChatSubModel("openai/gpt-5-mini", max_tokens=256)  # doctest: +SKIP
        >>> sub.query("Summarise: ...").text  # doctest: +SKIP
    """

    chat_class: type[ChatModel] = ChatModel

    def __init__(self, chat: ChatModel | str, **options: Any) -> None:
        if isinstance(chat, str):
            chat = self.chat_class(chat, **options)
        elif options:
            names = ", ".join(sorted(options))
            msg = f"options ({names}) go to {type(chat).__name__}(...) when {type(self).__name__} is given a ready one"
            raise ConfigurationError(msg)
        self.chat = chat
        self.name = chat.model

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.chat!r})"

    @property
    def cache_key(self) -> str:
        """Identical prompts to sub-models with equal keys may share an answer (see `rlm_plugins.core.memo`)."""
        return self.chat.cache_key

    @property
    def async_native(self) -> bool:
        """Whether `aquery` needs no thread per call (the http transport): sync batches then run as coroutines."""
        return bool(getattr(self.chat.transport, "async_native", False))

    def query(self, prompt: str) -> Completion:
        """Send `prompt` as one user message and return the reply.

        Raises:
            SubModelError: The call failed; the message says what to change.
        """
        try:
            return self.chat([{"role": "user", "content": prompt}])
        except ModelError as exc:
            raise SubModelError(str(exc)).with_cause(exc.cause) from None

    async def aquery(self, prompt: str) -> Completion:
        """Async twin of `query`."""
        try:
            return await self.chat.acall([{"role": "user", "content": prompt}])
        except ModelError as exc:
            raise SubModelError(str(exc)).with_cause(exc.cause) from None


def _estimate(call: Call) -> int:
    """A rough token count for the rate limiter: 4 characters per prompt token, plus the output allowance."""
    chars = sum(len(str(message.get("content") or "")) for message in call.messages)
    output = call.params.get("max_tokens") or call.params.get("max_completion_tokens") or 0
    return chars // 4 + int(output)
