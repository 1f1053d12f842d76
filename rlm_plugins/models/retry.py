"""When to retry a failed model call and how long to wait: 429, 5xx, timeouts and dropped connections, with
exponential backoff and full jitter, or exactly what the provider's `Retry-After` header asks for."""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.models.errors import chain, class_names

_RETRY_STATUS = frozenset({408, 409, 429})
_RETRY_NAMES = frozenset(
    {
        "RateLimitError",
        "InternalServerError",
        "ServiceUnavailableError",
        "OverloadedError",
        "APITimeoutError",
        "Timeout",
        "TimeoutException",
        "TimeoutError",
        "APIConnectionError",
        "ConnectError",
        "RemoteProtocolError",
    }
)
_NEVER_NAMES = frozenset({"ContextWindowExceededError", "AuthenticationError", "NotFoundError", "BadRequestError"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a model call is retried.

    Args:
        max_retries: retries after the first attempt (0 turns retrying off).
        base_delay: the first backoff in seconds; it doubles with every retry, with full jitter.
        max_delay: the longest single wait, including a provider's `Retry-After`.
    """

    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries={self.max_retries} must be >= 0 (0 turns retrying off)")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ConfigurationError("base_delay and max_delay must be >= 0 seconds")

    def delay(self, attempt: int, exc: BaseException) -> float | None:
        """Seconds to wait before retry number `attempt + 1`, or None when `exc` must not be retried."""
        if attempt >= self.max_retries or not retryable(exc):
            return None
        asked = retry_after(exc)
        if asked is not None:
            return min(asked, self.max_delay)
        return random.uniform(0, min(self.base_delay * 2**attempt, self.max_delay))


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of an SDK's status error, if the chain carries one."""
    for error in chain(exc):
        for holder in (error, getattr(error, "response", None)):
            status = getattr(holder, "status_code", None)
            if isinstance(status, int):
                return status
    return None


def retryable(exc: BaseException) -> bool:
    """True for rate limits, server errors, timeouts and connection failures; never for a client error."""
    names = class_names(exc)
    if names & _NEVER_NAMES:
        return False
    status = status_code(exc)
    if status is not None:
        return status in _RETRY_STATUS or status >= 500
    return bool(names & _RETRY_NAMES)


def _headers(exc: BaseException) -> list[Any]:
    found = []
    for error in chain(exc):
        response = getattr(error, "response", None)
        for headers in (getattr(response, "headers", None), getattr(error, "litellm_response_headers", None)):
            if headers is not None:
                found.append(headers)
    return found


def retry_after(exc: BaseException) -> float | None:
    """The wait a provider asked for in `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    for headers in _headers(exc):
        try:
            millis = headers.get("retry-after-ms")
            if millis is not None:
                return max(float(millis) / 1000, 0.0)
            value = headers.get("retry-after")
        except (AttributeError, TypeError, ValueError):
            continue
        if value is None:
            continue
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        return max(when.timestamp() - time.time(), 0.0)
    return None
