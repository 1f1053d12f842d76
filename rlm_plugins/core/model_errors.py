"""Provider failures (rate limit, auth, timeout, ...) as the `ModelError` family, for the framework adapters.

A model reached through DSPy or LangChain fails with that stack's exception classes (`dspy.utils.exceptions.LMError`,
`openai.RateLimitError`, `httpx.ReadTimeout`, ...). The adapters translate them here, by the class names along the
exception's cause chain, so the engine treats them as it treats a litellm failure in the standalone RLM: a root-model
failure ends the run with `ModelError.partial` holding the result so far, a sub-call failure becomes an error string
in its slot. Nothing here imports a provider SDK.
"""

from __future__ import annotations

from rlm_plugins.errors import (
    ModelAuthenticationError,
    ModelError,
    ModelRateLimitError,
    ModelTimeoutError,
    RLMError,
    SubModelError,
)

PROVIDER_PACKAGES = frozenset(
    {
        "aiohttp",
        "anthropic",
        "boto3",
        "botocore",
        "cohere",
        "google",
        "groq",
        "httpcore",
        "httpx",
        "litellm",
        "mistralai",
        "ollama",
        "openai",
        "requests",
        "urllib3",
    }
)
"""Top-level packages whose exceptions are provider or transport failures."""

_MAX_DETAIL = 300


def causes(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, outermost first (bounded, cycle-safe)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 12:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def class_names(exc: BaseException) -> set[str]:
    """Every class name along the cause chain's MROs."""
    return {cls.__name__ for error in causes(exc) for cls in type(error).__mro__}


def from_provider(exc: BaseException) -> bool:
    """Whether `exc` (or a cause) comes from a provider SDK or its HTTP stack, or is a network failure."""
    for error in causes(exc):
        if isinstance(error, (TimeoutError, ConnectionError)):
            return True
        if any(cls.__module__.split(".")[0] in PROVIDER_PACKAGES for cls in type(error).__mro__):
            return True
    return False


def kind_of(exc: BaseException) -> type[ModelError]:
    """The `ModelError` subclass that names what went wrong."""
    names = " ".join(sorted(class_names(exc)))
    if "RateLimit" in names:
        return ModelRateLimitError
    if "Auth" in names or "PermissionDenied" in names:
        return ModelAuthenticationError
    if "Timeout" in names or any(isinstance(error, TimeoutError) for error in causes(exc)):
        return ModelTimeoutError
    return ModelError


_ADVICE = {
    ModelRateLimitError: "rate limited; retry later or lower max_concurrency",
    ModelAuthenticationError: "the provider refused the key; check the API key and that it may use this model",
    ModelTimeoutError: "no answer in time; retry, or raise the model client's timeout",
    ModelError: "the call failed",
}


def as_model_error(exc: BaseException, model: str) -> ModelError:
    """`exc`, raised by a call to `model`, as the matching `ModelError` (raise it `from exc`)."""
    if isinstance(exc, ModelError):
        return exc
    kind = kind_of(exc)
    return kind(f"{model}: {_ADVICE[kind]} ({_detail(exc)})")


def as_sub_model_error(exc: BaseException, model: str) -> RLMError:
    """`exc`, raised by a sub-call to `model`, as a `SubModelError` whose message says what to do."""
    if isinstance(exc, RLMError):
        return exc
    return SubModelError(str(as_model_error(exc, model)))


def _detail(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."
