"""Provider exceptions (litellm, openai, httpx, plain network errors) map to the ModelError family by what they mean,
through any wrapping; anything that is not a provider failure is left alone."""

from __future__ import annotations

import httpx
import litellm
import openai
import pytest

from rlm_plugins.core.model_errors import as_model_error, as_sub_model_error, from_provider
from rlm_plugins.errors import (
    ModelAuthenticationError,
    ModelError,
    ModelRateLimitError,
    ModelTimeoutError,
    SubModelError,
)

REQUEST = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")


def wrapped(inner: BaseException) -> RuntimeError:
    """A framework error raised `from` the provider's, as DSPy and LangChain wrap them."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise RuntimeError("the LM call failed") from exc
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (litellm.RateLimitError("slow down", "openai", "gpt"), ModelRateLimitError),
        (litellm.AuthenticationError("bad key", "openai", "gpt"), ModelAuthenticationError),
        (litellm.Timeout("no reply", "gpt", "openai"), ModelTimeoutError),
        (openai.APITimeoutError(REQUEST), ModelTimeoutError),
        (httpx.ReadTimeout("read timed out", request=REQUEST), ModelTimeoutError),
        (TimeoutError("timed out"), ModelTimeoutError),
        (ConnectionRefusedError("refused"), ModelError),
        (wrapped(litellm.RateLimitError("slow down", "openai", "gpt")), ModelRateLimitError),
        (
            wrapped(openai.PermissionDeniedError("no", response=httpx.Response(403, request=REQUEST), body=None)),
            ModelAuthenticationError,
        ),
    ],
)
def test_provider_failures_map_by_meaning(exc, kind):
    assert from_provider(exc)
    error = as_model_error(exc, "openai/gpt")
    assert type(error) is kind
    assert str(error).startswith("openai/gpt: ")
    sub = as_sub_model_error(exc, "openai/gpt")
    assert isinstance(sub, SubModelError) and str(sub) == str(error)


@pytest.mark.parametrize("exc", [ValueError("bad field"), KeyError("x"), wrapped(TypeError("oops"))])
def test_other_errors_are_not_provider_failures(exc):
    assert not from_provider(exc)


def test_an_rlm_error_passes_through_unchanged():
    error = ModelRateLimitError("already mapped")
    assert as_model_error(error, "m") is error
    assert as_sub_model_error(error, "m") is error
