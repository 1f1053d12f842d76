"""Chat-completion bodies into `ChatRequest`s: conversions and caps (the 400s are tested over HTTP)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed")

from rlm_plugins.server.config import ServerConfig
from rlm_plugins.server.errors import APIError
from rlm_plugins.server.requests import parse_chat

HI = [{"role": "user", "content": "hi"}]


def test_defaults_and_conversions():
    req = parse_chat(
        {
            "model": "m",
            "messages": HI,
            "stop": "END",
            "stream": True,
            "stream_options": {"include_usage": True},
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}}},
            "temperature": 0.2,
        },
        ServerConfig(),
    )
    assert req.stop == ["END"] and req.stream and req.include_usage and req.parallel_tool_calls
    assert req.schema == {"name": "w", "parameters": {"type": "object"}}
    assert (
        parse_chat({"model": "m", "messages": HI, "response_format": {"type": "text"}}, ServerConfig()).schema is None
    )


def test_overrides_are_capped_by_the_server_maxima():
    config = ServerConfig(limit_max_iterations=5, limit_max_time=60.0, limit_max_cost=None)
    body = {"model": "m", "messages": HI, "max_iterations": 50, "max_time": 10, "max_cost": 3, "max_llm_calls": 2}
    assert parse_chat(body, config).overrides == {
        "max_iterations": 5,
        "max_llm_calls": 2,
        "max_time": 10.0,
        "max_cost": 3.0,
    }


def test_an_error_carries_the_openai_shape():
    with pytest.raises(APIError) as caught:
        parse_chat({"model": "m", "messages": HI, "n": 3}, ServerConfig())
    assert caught.value.status == 400
    assert caught.value.body() == {
        "error": {
            "message": "this server returns one choice per request; drop 'n' or set it to 1",
            "type": "invalid_request_error",
            "param": "n",
            "code": None,
        }
    }
