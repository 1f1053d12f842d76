"""The engine's model ports over litellm: a chat callable for the root policy and a SubModel for `llm_query`.

litellm is imported when a model is built, not when this module is, so `rlm_plugins.standalone` imports without it.
Every litellm failure becomes a `ModelError` (a `SubModelError` from `LiteLLMSubModel`) whose one-line message says
what to change; the original exception stays on its `cause` attribute (it is not chained).
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

from rlm_plugins.core.model_errors import causes, class_names
from rlm_plugins.core.ports import Completion, Usage
from rlm_plugins.errors import ConfigurationError, ModelError, SubModelError

Messages = list[dict[str, Any]]

_INSTALL_HINT = 'pip install "rlm-plugins[standalone]"'
_DETAIL_PREFIX = re.compile(r"^(?:(?:litellm\.)?\w+(?:Error|Exception|Timeout)\s*[:-]\s*)+")
_MAX_DETAIL = 200


def _import_litellm() -> ModuleType:
    """Import litellm, or say how to install it; quiet its debug banners once (our errors say what to do)."""
    try:
        import litellm
    except ImportError as exc:
        msg = f"LiteLLM models need litellm, which is not installed: {_INSTALL_HINT}"
        raise ConfigurationError(msg).with_cause(exc) from None
    if not getattr(litellm, "_rlm_plugins_configured", False):
        litellm.suppress_debug_info = True
        litellm._rlm_plugins_configured = True
    return litellm


class LiteLLMChat:
    """A chat model called through litellm: a list of messages in, a `Completion` (text, usage, cost) out.

    Args:
        model: A litellm model string, "provider/model" (e.g. "openai/gpt-4o-mini"). With `api_base` pointing at
            an OpenAI-compatible server, use "openai/<name>".
        api_base: The endpoint to call instead of the provider's default.
        api_key: The key to send instead of the provider's env var (e.g. OPENAI_API_KEY).
        **litellm_kwargs: Passed to every `litellm.completion` call (temperature, max_tokens, timeout,
            num_retries, ...).

    Raises:
        ConfigurationError: `model` is empty or litellm is not installed.

    Examples:
        >>> chat = LiteLLMChat("openai/gpt-4o-mini", temperature=0.0)  # doctest: +SKIP
        >>> chat([{"role": "user", "content": "Say hi"}]).text  # doctest: +SKIP
        'Hi!'
    """

    def __init__(
        self, model: str, *, api_base: str | None = None, api_key: str | None = None, **litellm_kwargs: Any
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            msg = f'model must be a litellm model string such as "openai/gpt-4o-mini", got {model!r}'
            raise ConfigurationError(msg)
        self._litellm = _import_litellm()
        self.model = model
        self.api_base = api_base
        self.api_key = api_key
        self.litellm_kwargs = litellm_kwargs

    def __repr__(self) -> str:
        base = f", api_base={self.api_base!r}" if self.api_base else ""
        return f"{type(self).__name__}({self.model!r}{base})"

    def __call__(self, messages: Messages | str, **kwargs: Any) -> Completion:
        """Call the model once; keyword arguments override the constructor's litellm options for this call.

        Raises:
            ModelError: The call failed; the message says what to change.
        """
        request = self._request(messages, kwargs)
        try:
            response = self._litellm.completion(**request)
        except Exception as exc:
            raise ModelError(_describe(exc, self, request.get("timeout"))).with_cause(exc) from None
        return self._completion(response)

    async def acall(self, messages: Messages | str, **kwargs: Any) -> Completion:
        """Async twin of `__call__`, over `litellm.acompletion`."""
        request = self._request(messages, kwargs)
        try:
            response = await self._litellm.acompletion(**request)
        except Exception as exc:
            raise ModelError(_describe(exc, self, request.get("timeout"))).with_cause(exc) from None
        return self._completion(response)

    def _request(self, messages: Messages | str, overrides: dict[str, Any]) -> dict[str, Any]:
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        request: dict[str, Any] = {"model": self.model, "messages": messages, **self.litellm_kwargs, **overrides}
        if self.api_base is not None:
            request.setdefault("api_base", self.api_base)
        if self.api_key is not None:
            request.setdefault("api_key", self.api_key)
        return request

    def _completion(self, response: Any) -> Completion:
        choices = getattr(response, "choices", None) or []
        message = getattr(choices[0], "message", None) if choices else None
        text = getattr(message, "content", None) or ""
        usage = getattr(response, "usage", None)
        return Completion(
            text=text,
            usage=Usage(
                calls=1,
                input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                cost=self._cost(response),
            ),
            model=self.model,
        )

    def _cost(self, response: Any) -> float | None:
        """The call's cost in USD when litellm knows the model's prices, else None."""
        hidden = getattr(response, "_hidden_params", None) or {}
        cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
        if isinstance(cost, (int, float)):
            return float(cost)
        try:
            cost = self._litellm.completion_cost(completion_response=response)
        except Exception:
            return None
        return float(cost) if isinstance(cost, (int, float)) else None


class LiteLLMSubModel:
    """The SubModel port over litellm: what `llm_query(prompt)` calls, one user message per prompt.

    Args:
        chat: A `LiteLLMChat`, or a litellm model string to build one from.
        **litellm_kwargs: With a model string, passed to `LiteLLMChat` (api_base, api_key, temperature, ...).

    Raises:
        ConfigurationError: Options were given together with a ready `LiteLLMChat`.

    Examples:
        >>> sub = LiteLLMSubModel("openai/gpt-4o-mini", max_tokens=256)  # doctest: +SKIP
        >>> sub.query("Summarise: ...").text  # doctest: +SKIP
    """

    def __init__(self, chat: LiteLLMChat | str, **litellm_kwargs: Any) -> None:
        if isinstance(chat, str):
            chat = LiteLLMChat(chat, **litellm_kwargs)
        elif litellm_kwargs:
            names = ", ".join(sorted(litellm_kwargs))
            msg = f"options ({names}) go to LiteLLMChat(...) when LiteLLMSubModel is given a ready LiteLLMChat"
            raise ConfigurationError(msg)
        self.chat = chat
        self.name = chat.model

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.chat!r})"

    def query(self, prompt: str) -> Completion:
        """Send `prompt` as one user message and return the reply.

        Raises:
            SubModelError: The call failed; the message says what to change.
        """
        try:
            return self.chat(_as_messages(prompt))
        except ModelError as exc:
            raise SubModelError(str(exc)).with_cause(exc.cause) from None

    async def aquery(self, prompt: str) -> Completion:
        """Async twin of `query`."""
        try:
            return await self.chat.acall(_as_messages(prompt))
        except ModelError as exc:
            raise SubModelError(str(exc)).with_cause(exc.cause) from None


def _as_messages(prompt: str) -> Messages:
    return [{"role": "user", "content": prompt}]


def _detail(exc: BaseException) -> str:
    """The exception's message on one short line, without litellm's class-name prefixes."""
    lines = str(exc).strip().splitlines()
    text = _DETAIL_PREFIX.sub("", lines[0].strip()[:1000] if lines else "") or type(exc).__name__
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def _key_hint(chat: LiteLLMChat) -> str:
    if chat.api_key is not None:
        return "check the key passed as api_key="
    try:
        missing = chat._litellm.validate_environment(model=chat.model).get("missing_keys") or []
    except Exception:
        missing = []
    env = " or ".join(missing) if missing else "the provider's API key env var"
    return f"set {env} or pass api_key="


def _describe(exc: Exception, chat: LiteLLMChat, timeout: float | None) -> str:
    """One line naming what failed and what to change, from a litellm (or openai / httpx) exception."""
    chain, names = causes(exc), class_names(exc)
    text = " ".join(str(error) for error in chain).lower()
    model, detail = chat.model, _detail(exc)
    if names & {"Timeout", "APITimeoutError", "TimeoutException", "TimeoutError"}:
        within = f"no reply within timeout={timeout}s" if timeout is not None else "the call timed out"
        return f"{model}: {within}; retry later, raise timeout=, or lower the concurrency"
    if "AuthenticationError" in names or "missing credentials" in text:
        return f"{model}: authentication failed ({detail}); {_key_hint(chat)}"
    if "PermissionDeniedError" in names:
        return f"{model}: the key may not use this model ({detail}); check the account's access or pick another model"
    if "NotFoundError" in names or "llm provider not provided" in text:
        return f'{model}: model not found ({detail}); check the model name, written "provider/model"'
    if "RateLimitError" in names:
        return f"{model}: rate limited ({detail}); retry later or lower the concurrency"
    if "ContextWindowExceededError" in names:
        return f"{model}: the prompt is longer than the context window ({detail}); shorten it or pick a larger model"
    if names & {"APIConnectionError", "ConnectError", "ClientConnectorError", "ConnectionError", "gaierror"}:
        where = chat.api_base or "the provider's endpoint"
        return f"{model}: cannot connect to {where} ({_detail(chain[-1])}); check api_base= and the network"
    if "BadRequestError" in names:
        return f"{model}: the provider rejected the request ({detail}); check the messages and the litellm options"
    if names & {"InternalServerError", "ServiceUnavailableError"}:
        return f"{model}: the provider failed ({detail}); retry later"
    return f"{model}: the call failed with {type(exc).__name__} ({detail})"
