"""The lean HTTP transport's request and its errors, without a server: endpoint and key resolution, parameters,
error classes by status, and how retries and `ModelError` kinds read them."""

from __future__ import annotations

import json
import ssl

import pytest
from multidict import CIMultiDict

from rlm_plugins.core.model_errors import kind_of
from rlm_plugins.errors import ModelAuthenticationError, ModelError, ModelRateLimitError, ModelTimeoutError
from rlm_plugins.models import http_transport as http
from rlm_plugins.models._aio import Session
from rlm_plugins.models.base import Call
from rlm_plugins.models.retry import RetryPolicy, retry_after, retryable


def _request(provider: str = "openai", **call: object) -> tuple[str, dict[str, str], dict]:
    url, headers, body = http.HTTPTransport(provider).request(Call(**{"model": "m", "messages": [], **call}))
    return url, headers, json.loads(body)


def test_endpoint_and_key_come_from_the_call_then_the_environment(monkeypatch):
    for name in ("OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "HOSTED_VLLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    url, headers, _ = _request()
    assert url == "https://api.openai.com/v1/chat/completions" and headers["Authorization"] == "Bearer sk-env"
    url, headers, _ = _request(api_base="http://10.0.0.2:8000/v1/", api_key="sk-call")
    assert url == "http://10.0.0.2:8000/v1/chat/completions" and headers["Authorization"] == "Bearer sk-call"
    assert _request("openrouter")[0] == "https://openrouter.ai/api/v1/chat/completions"
    monkeypatch.setenv("HOSTED_VLLM_API_BASE", "http://vllm:8000/v1")
    url, headers, _ = _request("hosted_vllm")
    assert url == "http://vllm:8000/v1/chat/completions" and headers["Authorization"] == "Bearer sk-no-key"
    monkeypatch.setenv("OPENAI_ORG_ID", "org-1")
    assert _request()[1]["OpenAI-Organization"] == "org-1"


def test_parameters_go_to_the_top_level_of_the_body():
    params = {"temperature": 0.2, "max_tokens": 9, "extra_body": {"top_k": 3}, "extra_query": {"api-version": "1"}}
    url, headers, body = _request(model="o3-mini", params={**params, "extra_headers": {"X-A": "1"}})
    assert url.endswith("/chat/completions?api-version=1") and headers["X-A"] == "1"
    assert body == {"model": "o3-mini", "messages": [], "temperature": 0.2, "max_completion_tokens": 9, "top_k": 3}


@pytest.mark.parametrize(
    ("status", "cls", "kind", "retried"),
    [
        (400, http.BadRequestError, ModelError, False),
        (401, http.AuthenticationError, ModelAuthenticationError, False),
        (403, http.PermissionDeniedError, ModelAuthenticationError, False),
        (404, http.NotFoundError, ModelError, False),
        (409, http.APIStatusError, ModelError, True),
        (429, http.RateLimitError, ModelRateLimitError, True),
        (503, http.InternalServerError, ModelError, True),
    ],
)
def test_error_statuses_map_to_classes_kinds_and_retries(status, cls, kind, retried):
    error = http.status_error(status, b'{"error": {"message": "nope", "type": "x"}}', CIMultiDict())
    assert type(error) is cls and str(error) == f"Error code: {status} - nope"
    assert kind_of(error) is kind and retryable(error) is retried


def test_retry_after_is_read_from_the_error_response_headers():
    error = http.status_error(429, b"slow down", CIMultiDict({"Retry-After": "1.5"}))
    assert str(error) == "Error code: 429 - slow down"
    assert retry_after(error) == 1.5 and RetryPolicy(2).delay(0, error) == 1.5
    assert RetryPolicy(2).delay(0, http.status_error(429, b"", CIMultiDict({"retry-after-ms": "20"}))) == 0.02


def test_timeouts_and_connection_failures_are_retried_as_their_kinds():
    assert kind_of(http.APITimeoutError("late")) is ModelTimeoutError and retryable(http.APITimeoutError("late"))
    assert retryable(http.APIConnectionError("refused"))
    assert not retryable(http.APIError("the server answered without choices"))


async def test_https_endpoints_verify_against_certifi_and_plain_http_needs_no_tls(monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    session = Session()
    try:
        assert "ssl" not in session.options("http://127.0.0.1:8000/v1/chat/completions")
        context = session.options("https://api.openai.com/v1/chat/completions")["ssl"]
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert context.cert_store_stats()["x509_ca"] > 0
    finally:
        await session.http.close()
