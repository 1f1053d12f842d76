"""Turn a provider SDK's exception (openai, anthropic, litellm, httpx) into one line that says what to change."""

from __future__ import annotations

import re
from collections.abc import Callable

from rlm_plugins.core.model_errors import causes as chain
from rlm_plugins.core.model_errors import class_names

_DETAIL_PREFIX = re.compile(r"^(?:(?:litellm\.)?\w+(?:Error|Exception|Timeout)\s*[:-]\s*)+")
_MAX_DETAIL = 200
_TIMEOUTS = frozenset({"Timeout", "APITimeoutError", "TimeoutException", "TimeoutError"})
_CONNECTION = frozenset({"APIConnectionError", "ConnectError", "ClientConnectorError", "ConnectionError", "gaierror"})
_MISSING_KEY_TEXT = ("missing credentials", "api_key client option", "could not resolve authentication method")
_OVERFLOW_TEXT = ("maximum context length", "context window", "prompt is too long", "context_length_exceeded")


def _detail(exc: BaseException) -> str:
    """The exception's message on one short line, without SDK class-name prefixes."""
    lines = str(exc).strip().splitlines()
    text = _DETAIL_PREFIX.sub("", lines[0].strip()[:1000] if lines else "") or type(exc).__name__
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def describe(
    exc: BaseException,
    model: str,
    *,
    api_base: str | None,
    timeout: float | None,
    key_hint: Callable[[], str],
) -> str:
    """One line naming what failed and what to change; `key_hint` says how to fix a key (called only if needed)."""
    errors = chain(exc)
    names = class_names(exc)
    text = " ".join(str(error) for error in errors).lower()
    detail = _detail(exc)
    if names & _TIMEOUTS:
        within = f"no reply within timeout={timeout}s" if timeout is not None else "the call timed out"
        return f"{model}: {within}; retry later, raise timeout=, or lower the concurrency"
    if "AuthenticationError" in names or any(marker in text for marker in _MISSING_KEY_TEXT):
        return f"{model}: authentication failed ({detail}); {key_hint()}"
    if "PermissionDeniedError" in names:
        return f"{model}: the key may not use this model ({detail}); check the account's access or pick another model"
    if "NotFoundError" in names or "llm provider not provided" in text:
        return f'{model}: model not found ({detail}); check the model name, written "provider/model"'
    if "RateLimitError" in names:
        return f"{model}: rate limited ({detail}); retry later or lower the concurrency"
    if "ContextWindowExceededError" in names or ("BadRequestError" in names and any(t in text for t in _OVERFLOW_TEXT)):
        return f"{model}: the prompt is longer than the context window ({detail}); shorten it or pick a larger model"
    if names & _CONNECTION:
        where = api_base or "the provider's endpoint"
        return f"{model}: cannot connect to {where} ({_detail(errors[-1])}); check api_base= and the network"
    if "BadRequestError" in names:
        return f"{model}: the provider rejected the request ({detail}); check the messages and the model options"
    if names & {"InternalServerError", "ServiceUnavailableError", "OverloadedError"}:
        return f"{model}: the provider failed ({detail}); retry later"
    return f"{model}: the call failed with {type(exc).__name__} ({detail})"
