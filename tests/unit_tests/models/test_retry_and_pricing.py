"""Which failures are retried and for how long, which transport a model string gets, and what a call costs."""

from __future__ import annotations

import email.utils
import time

import httpx
import openai
import pytest

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.models import RetryPolicy, context_window, price, transport_name
from rlm_plugins.models.retry import retry_after, retryable


def status_error(status: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(status, headers=headers or {}, request=request)
    cls = {429: openai.RateLimitError, 500: openai.InternalServerError, 401: openai.AuthenticationError}.get(
        status, openai.APIStatusError
    )
    return cls("failed", response=response, body=None)


@pytest.mark.parametrize(
    ("status", "expected"), [(429, True), (500, True), (503, True), (408, True), (401, False), (400, False)]
)
def test_retryable_statuses(status, expected):
    assert retryable(status_error(status)) is expected


def test_timeouts_and_connection_errors_are_retried_but_other_errors_are_not():
    request = httpx.Request("POST", "http://127.0.0.1/")
    assert retryable(openai.APITimeoutError(request=request))
    assert retryable(openai.APIConnectionError(request=request))
    assert not retryable(ValueError("bad"))


def test_retry_after_in_seconds_milliseconds_and_http_date():
    assert retry_after(status_error(429, {"Retry-After": "2.5"})) == 2.5
    assert retry_after(status_error(429, {"retry-after-ms": "300"})) == 0.3
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < retry_after(status_error(429, {"Retry-After": when})) <= 30
    assert retry_after(status_error(429)) is None


def test_policy_honours_retry_after_and_caps_backoff():
    policy = RetryPolicy(max_retries=3, base_delay=1.0, max_delay=10.0)
    assert policy.delay(0, status_error(429, {"Retry-After": "4"})) == 4.0
    assert policy.delay(0, status_error(429, {"Retry-After": "400"})) == 10.0
    assert 0 <= policy.delay(2, status_error(500)) <= 4.0
    assert policy.delay(3, status_error(500)) is None
    assert policy.delay(0, status_error(401)) is None
    with pytest.raises(ConfigurationError, match="max_retries"):
        RetryPolicy(max_retries=-1)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("openai/gpt-5-mini", "openai"),
        ("gpt-4o-mini", "openai"),
        ("openrouter/meta-llama/llama-3-70b", "openai"),
        ("hosted_vllm/qwen", "openai"),
        ("anthropic/claude-sonnet-4-5", "anthropic"),
        ("claude-sonnet-4-5", "anthropic"),
        ("gemini/gemini-2.5-pro", "litellm"),
        ("bedrock/anthropic.claude-3", "litellm"),
        ("azure/my-deployment", "litellm"),
        ("mistral-large", "litellm"),
    ],
)
def test_transport_per_model_string(model, expected):
    assert transport_name(model) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("openai/qwen", "http"),
        ("hosted_vllm/qwen", "http"),
        ("gpt-4o-mini", "http"),
        ("anthropic/claude-sonnet-4-5", "anthropic"),
        ("gemini/gemini-2.5-pro", "litellm"),
        ("my-local-model", "litellm"),
    ],
)
def test_openai_compatible_servers_given_as_api_base_get_the_lean_http_transport(model, expected):
    assert transport_name(model, api_base="http://127.0.0.1:8000/v1") == expected


def test_explicit_transport_wins_and_unknown_ones_are_refused():
    assert transport_name("openai/gpt-5-mini", "litellm") == "litellm"
    assert transport_name("openai/gpt-5-mini", "http") == "http"
    assert transport_name("openai/qwen", "openai", api_base="http://127.0.0.1:8000/v1") == "openai"
    with pytest.raises(ConfigurationError, match="transport="):
        transport_name("openai/gpt-5-mini", "grpc")


def test_prices_come_from_the_offline_table_with_cache_rates():
    plain = price("openai/gpt-4o-mini", 1_000_000, 0)
    cached = price("openai/gpt-4o-mini", 1_000_000, 0, cached_tokens=1_000_000)
    assert plain == pytest.approx(0.15)
    assert cached == pytest.approx(0.075)
    assert price("gpt-4o-mini", 0, 1_000_000) == pytest.approx(0.6)
    written = price("anthropic/claude-sonnet-4-5", 1_000, 0, cache_write_tokens=1_000)
    read = price("anthropic/claude-sonnet-4-5", 1_000, 0, cached_tokens=1_000)
    assert written > price("anthropic/claude-sonnet-4-5", 1_000, 0) > read
    assert price("openai/scripted-model", 10, 10) is None
    assert price("gemini/gpt-4o-mini", 10, 10) is None


def test_context_window_where_the_table_knows_it():
    assert context_window("openai/gpt-4o-mini") == 128_000
    assert context_window("openai/no-such-model") is None


def test_without_an_sdk_its_models_fall_back_to_litellm(monkeypatch):
    monkeypatch.setattr("rlm_plugins.models.select._installed", lambda module: module != "anthropic")
    assert transport_name("anthropic/claude-sonnet-4-5") == "litellm"
    assert transport_name("openai/gpt-5-mini") == "openai"
    monkeypatch.setattr("rlm_plugins.models.select._installed", lambda module: module != "aiohttp")
    assert transport_name("openai/qwen", api_base="http://127.0.0.1:8000/v1") == "openai"
    monkeypatch.setattr("rlm_plugins.models.select._installed", lambda module: False)
    assert transport_name("openai/gpt-5-mini") == "litellm"
