"""The lean HTTP transport against the scripted OpenAI-compatible server on loopback: what goes on the wire, usage
and cached tokens, retries honouring Retry-After, errors that say what to change, sessions per event loop closed
with their loop, the sync path's one background loop, and proxies from the environment."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlm_plugins.errors import ModelAuthenticationError, ModelError, ModelRateLimitError, ModelTimeoutError
from rlm_plugins.models import ChatModel, ChatSubModel
from rlm_plugins.models import http_transport as http
from rlm_plugins.models.http_transport import HTTPTransport
from tests.fakes import count_tokens
from tests.integration_tests._transport_kit import CACHED, MESSAGES, RATE_LIMITED, Sleeps, chat_on, unused_port


def _check(completion, server) -> None:
    assert completion.text == "Paris."
    usage = completion.usage
    assert (usage.calls, usage.cached_input_tokens) == (1, 3)
    assert usage.input_tokens == count_tokens("Be brief.Capital of France?")
    assert usage.output_tokens == count_tokens("Paris.")
    request, headers = server.requests[-1], server.headers[-1]
    assert request == {"model": "scripted", "messages": MESSAGES, "temperature": 0.0}
    assert headers["authorization"] == "Bearer sk-test"
    assert headers["content-type"] == "application/json"


def test_sync_call_sends_the_openai_request_and_reports_cached_tokens(scripted_openai):
    server = scripted_openai([{"content": "Paris.", "usage": CACHED}])
    chat = chat_on(server, temperature=0.0)
    assert isinstance(chat.transport, HTTPTransport)
    _check(chat(MESSAGES), server)


async def test_async_call_sends_the_openai_request_and_reports_cached_tokens(scripted_openai):
    server = scripted_openai([{"content": "Paris.", "usage": CACHED}])
    _check(await chat_on(server, temperature=0.0).acall(MESSAGES), server)


def test_extra_parameters_headers_and_query_reach_the_server(scripted_openai):
    server = scripted_openai(["ok"])
    chat = chat_on(
        server,
        "openai/gpt-5-mini",
        transport="http",
        max_tokens=64,
        top_k=5,
        extra_body={"repetition_penalty": 1.1},
        extra_headers={"X-Trace": "t-1"},
    )
    assert chat("hi").text == "ok"
    (request,) = server.requests
    assert request["max_completion_tokens"] == 64 and "max_tokens" not in request
    assert (request["top_k"], request["repetition_penalty"]) == (5, 1.1)
    assert "extra_body" not in request and server.headers[0]["x-trace"] == "t-1"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_retries_429_and_503_waiting_what_retry_after_asks(scripted_openai, mode):
    server = scripted_openai([RATE_LIMITED, {"status": 503, "message": "busy"}, "Paris."])
    chat = chat_on(server, max_retries=2)
    chat.sleep = sleeps = Sleeps()
    chat.asleep = sleeps.asleep
    completion = chat(MESSAGES) if mode == "sync" else asyncio.run(chat.acall(MESSAGES))
    assert completion.text == "Paris."
    assert sleeps[0] == 0.25 and len(sleeps) == 2
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("reply", "error", "hint"),
    [
        ({"status": 401, "message": "Incorrect API key provided"}, ModelAuthenticationError, "check the key passed"),
        ({"status": 404, "message": "The model does not exist"}, ModelError, '"provider/model"'),
        ({"status": 400, "message": "This model's maximum context length is 8192 tokens."}, ModelError, "shorten"),
        ({"status": 429, "message": "Slow down"}, ModelRateLimitError, "rate limited \\(Error code: 429 - Slow down"),
        ({"delay": 5, "content": "late"}, ModelTimeoutError, "timeout=0.5s"),
    ],
)
def test_errors_are_model_errors_that_say_what_to_change(scripted_openai, reply, error, hint):
    server = scripted_openai([reply])
    with pytest.raises(error, match=hint) as info:
        chat_on(server, max_retries=0, timeout=0.5)("hi")
    assert isinstance(info.value.cause, http.APIError)


def test_gives_up_after_max_retries(scripted_openai):
    server = scripted_openai([RATE_LIMITED] * 3)
    chat = chat_on(server, max_retries=2)
    chat.sleep = Sleeps()
    with pytest.raises(ModelRateLimitError) as info:
        chat("hi")
    assert isinstance(info.value.cause, http.RateLimitError) and info.value.cause.status_code == 429
    assert len(server.requests) == 3


async def test_unreachable_endpoint_is_named_and_retried():
    api_base = f"http://127.0.0.1:{unused_port()}/v1"
    chat = ChatModel("openai/x", api_base=api_base, api_key="k", max_retries=1)
    chat.asleep = (sleeps := Sleeps()).asleep
    with pytest.raises(ModelError, match=f"cannot connect to {api_base}.*check api_base="):
        await chat.acall("hi")
    assert len(sleeps) == 1


def test_replies_without_usage_or_without_choices(scripted_openai):
    server = scripted_openai([{"content": None, "usage": None}])
    completion = chat_on(server)("hi")
    assert (completion.text, completion.usage.input_tokens, completion.usage.calls) == ("", 0, 1)
    with pytest.raises(http.APIError, match=r"without choices: .*upstream failed"):
        http.json_reply({"error": {"message": "upstream failed"}})
    reply = http.json_reply({"choices": [{"message": {"content": "x"}}], "usage": {"cache_read_input_tokens": 7}})
    assert (reply.text, reply.cached_tokens) == ("x", 7)


async def test_sessions_belong_to_their_event_loop_and_close_with_it(scripted_openai, caplog):
    server = scripted_openai(lambda body: "ok")
    chat = chat_on(server)
    here = await http._SESSIONS.session()
    assert (await chat.acall("hi")).text == "ok"
    assert await http._SESSIONS.session() is here

    async def elsewhere():
        session = await http._SESSIONS.session()
        return session, (await chat.acall("hi")).text

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        other, text = await asyncio.to_thread(asyncio.run, elsewhere())
        gc.collect()
    assert other is not here and text == "ok"
    assert other.http.closed and not here.http.closed
    assert "Unclosed" not in caplog.text


def test_sync_calls_from_many_threads_share_one_background_loop(scripted_openai, monkeypatch):
    names: set[str] = set()
    server = scripted_openai(lambda body: "echo " + body["messages"][-1]["content"])
    sub = ChatSubModel(chat_on(server))
    original = http.HTTPTransport.acomplete

    async def spy(self, call):
        names.add(threading.current_thread().name)
        return await original(self, call)

    monkeypatch.setattr(http.HTTPTransport, "acomplete", spy)
    with ThreadPoolExecutor(16) as pool:
        texts = [c.text for c in pool.map(sub.query, [str(i) for i in range(64)])]
    assert texts == [f"echo {i}" for i in range(64)]
    assert names == {"rlm-async"}


async def test_proxies_come_from_the_environment(scripted_openai, monkeypatch):
    server = scripted_openai(["direct"])
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{unused_port()}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(ModelError, match="cannot connect"):
        await chat_on(server, max_retries=0).acall("hi")
    assert server.requests == []
    await http._SESSIONS.aclose()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert (await chat_on(server, max_retries=0).acall("hi")).text == "direct"
