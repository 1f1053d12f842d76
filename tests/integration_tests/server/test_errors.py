"""Every bad input gets the OpenAI error shape with the right status; auth, limits and disconnects."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest

from tests.integration_tests.server._scripts import descendants, wait_for
from tests.integration_tests.server.conftest import CLIENT_KEY
from tests.integration_tests.server.test_openai_client import ANSWERS, TIME, WEATHER, client

AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}
HI = [{"role": "user", "content": "[plain] Hi"}]


def post(server, body, headers=AUTH, raw: bytes | None = None) -> httpx.Response:
    url = server.base_url + "/chat/completions"
    if raw is not None:
        return httpx.post(url, content=raw, headers={**headers, "Content-Type": "application/json"}, timeout=60)
    return httpx.post(url, json=body, headers=headers, timeout=60)


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return body["error"]


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ([1, 2], None, "invalid_body"),
        ({"messages": HI}, "model", None),
        ({"model": "rlm"}, "messages", None),
        ({"model": "rlm", "messages": []}, "messages", None),
        ({"model": "rlm", "messages": ["hi"]}, "messages[0]", None),
        ({"model": "rlm", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", None),
        ({"model": "rlm", "messages": [{"role": "user", "content": 5}]}, "messages[0].content", None),
        ({"model": "rlm", "messages": [{"role": "user"}]}, "messages[0].content", None),
        ({"model": "rlm", "messages": [*HI, {"role": "tool", "tool_call_id": "x", "content": "1"}]}, None, None),
        ({"model": "rlm", "messages": [{"role": "assistant", "content": None, "tool_calls": 3}]}, None, None),
        ({"model": "rlm", "messages": HI, "stream": "yes"}, "stream", None),
        ({"model": "rlm", "messages": HI, "n": 2}, "n", None),
        ({"model": "rlm", "messages": HI, "tools": [{"type": "function"}]}, "tools[0]", None),
        ({"model": "rlm", "messages": HI, "tools": [{"function": {"name": "bad name"}}]}, "tools", None),
        ({"model": "rlm", "messages": HI, "tools": [{"function": {"name": "FINAL"}}]}, "tools", None),
        ({"model": "rlm", "messages": HI, "tools": [WEATHER], "tool_choice": {"function": {"name": "x"}}}, None, None),
        ({"model": "rlm", "messages": HI, "tool_choice": "required"}, "tool_choice", None),
        ({"model": "rlm", "messages": HI, "response_format": {"type": "xml"}}, "response_format", None),
        ({"model": "rlm", "messages": HI, "stop": [1]}, "stop", None),
        ({"model": "rlm", "messages": HI, "max_iterations": -1}, "max_iterations", None),
        ({"model": "rlm", "messages": HI, "max_iterations": 2.5}, "max_iterations", None),
        ({"model": "rlm", "messages": HI, "max_time": "long"}, "max_time", None),
        ({"model": "rlm", "messages": HI, "max_cost": True}, "max_cost", None),
    ],
)
def test_bad_requests_get_400_naming_the_field(server, body, param, code):
    error = error_of(post(server, body), 400)
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    if code is not None:
        assert error["code"] == code


def test_tool_message_without_a_matching_call(server):
    body = {"model": "rlm", "messages": [*HI, {"role": "tool", "tool_call_id": "call_9", "content": "1"}]}
    error = error_of(post(server, body), 400)
    assert error["code"] == "tool_call_not_found" and error["param"] == "messages[1].tool_call_id"


def test_malformed_json(server):
    error = error_of(post(server, None, raw=b'{"model": "rlm", "messages": ['), 400)
    assert error["code"] == "invalid_json"
    assert error_of(post(server, None, raw=b"\xff\xfe"), 400)["code"] == "invalid_json"


def test_unknown_model_is_404_with_the_openai_client(server):
    with pytest.raises(openai.NotFoundError) as caught:
        client(server).chat.completions.create(model="nope", messages=HI)
    assert caught.value.body["code"] == "model_not_found" and caught.value.body["param"] == "model"


def test_unknown_route_is_404_in_the_error_shape(server):
    assert error_of(httpx.get(server.base_url + "/engines", timeout=10), 404)["code"] == "not_found"
    assert error_of(httpx.get(server.base_url + "/chat/completions", timeout=10), 405)["code"] == "method_not_allowed"


def test_missing_or_wrong_key_is_401(server):
    assert error_of(post(server, {"model": "rlm", "messages": HI}, headers={}), 401)["code"] == "invalid_api_key"
    wrong = {"Authorization": "Bearer sk-wrong"}
    assert error_of(post(server, {"model": "rlm", "messages": HI}, headers=wrong), 401)["type"] == (
        "authentication_error"
    )
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0).models.list()


@pytest.mark.parametrize("chunked", [False, True])
def test_oversize_body_is_413(serve, chunked):
    server = serve(max_body_bytes=2_000)
    body = json.dumps({"model": "rlm", "messages": [{"role": "user", "content": "x" * 5_000}]}).encode()
    content = iter([body[i : i + 500] for i in range(0, len(body), 500)]) if chunked else body
    response = httpx.post(
        server.base_url + "/chat/completions",
        content=content,
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=60,
    )
    assert error_of(response, 413)["code"] == "request_too_large"
    assert post(server, {"model": "rlm", "messages": HI}).status_code == 200, "the server still works"


def test_budget_overrides_are_capped_by_the_server(serve):
    server = serve(limit_max_iterations=1)
    response = post(server, {"model": "rlm", "messages": HI, "max_iterations": 50})
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["rlm"]["finish_reason"] == "max_iterations" and body["rlm"]["iterations"] == 1


def paused_conversation(server) -> tuple[list[dict], dict]:
    messages = [{"role": "user", "content": "[tools] Weather and time in Paris?"}]
    first = client(server).chat.completions.create(model="rlm", messages=messages, tools=[WEATHER, TIME])
    message = first.choices[0].message
    results = [{"role": "tool", "tool_call_id": c.id, "content": ANSWERS[c.function.name]} for c in message.tool_calls]
    return [*messages, message.model_dump(exclude_none=True), *results], {"tools": [WEATHER, TIME]}


def test_continuation_with_unknown_ids_is_404(server):
    messages, extra = paused_conversation(server)
    messages[1]["tool_calls"][0]["id"] = messages[2]["tool_call_id"] = "call_rlm_0123456789abcdef_1"
    error = error_of(post(server, {"model": "rlm", "messages": messages, **extra}), 404)
    assert error["code"] == "session_not_found" and "never handed them out" in error["message"]


def test_continuation_sent_twice_is_409_already_resumed(server):
    messages, extra = paused_conversation(server)
    assert post(server, {"model": "rlm", "messages": messages, **extra}).status_code == 200
    error = error_of(post(server, {"model": "rlm", "messages": messages, **extra}), 409)
    assert error["code"] == "session_already_resumed"


def test_expired_continuation_is_404_expired(serve):
    server = serve(session_ttl=0.5)
    messages, extra = paused_conversation(server)
    time.sleep(1.0)
    error = error_of(post(server, {"model": "rlm", "messages": messages, **extra}), 404)
    assert error["code"] == "session_expired" and "session_ttl=0.5s" in error["message"]


def test_continuation_in_another_conversation_is_refused_and_the_right_one_still_resumes(server):
    messages, extra = paused_conversation(server)
    forged = [{"role": "user", "content": "[tools] something else entirely"}, *messages[1:]]
    error = error_of(post(server, {"model": "rlm", "messages": forged, **extra}), 409)
    assert error["code"] == "conversation_mismatch"
    response = post(server, {"model": "rlm", "messages": messages, **extra})
    assert response.status_code == 200 and response.json()["choices"][0]["finish_reason"] == "tool_calls"


def test_continuation_to_another_model_is_refused(serve, upstream):
    from tests.integration_tests.server.conftest import model_config

    server = serve(models={"other": model_config(upstream)})
    messages, extra = paused_conversation(server)
    assert error_of(post(server, {"model": "other", "messages": messages, **extra}), 400)["code"] == "model_mismatch"


SLOW = {"model": "rlm", "messages": [{"role": "user", "content": "[slow] wait"}]}


@pytest.mark.parametrize("stream", [False, True])
async def test_client_disconnect_cancels_the_run_and_leaves_no_process(server, stream):
    before = descendants()
    async with httpx.AsyncClient(timeout=120) as http:
        request = asyncio.ensure_future(
            http.post(server.base_url + "/chat/completions", json={**SLOW, "stream": stream}, headers=AUTH)
            if not stream
            else _read_stream(http, server.base_url + "/chat/completions", {**SLOW, "stream": True})
        )
        await wait_for(lambda: len(descendants() - before) > 0 and server.state.limiter.running == 1)
        await asyncio.sleep(0.3)  # the sandbox is inside the 120 s sleep now
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)
    await wait_for(lambda: not (descendants() - before) and server.state.limiter.running == 0)
    assert not server.state.tasks


async def _read_stream(http: httpx.AsyncClient, url: str, body: dict) -> list[str]:
    async with http.stream("POST", url, json=body, headers=AUTH) as response:
        return [line async for line in response.aiter_lines()]


async def test_full_server_answers_429_with_retry_after(serve):
    server = serve(max_concurrent_runs=1, max_queued_runs=1, queue_timeout=0.5)
    async with httpx.AsyncClient(timeout=120) as http:
        slow = asyncio.ensure_future(http.post(server.base_url + "/chat/completions", json=SLOW, headers=AUTH))
        await wait_for(lambda: server.state.limiter.running == 1)
        queued = asyncio.ensure_future(
            http.post(server.base_url + "/chat/completions", json={"model": "rlm", "messages": HI}, headers=AUTH)
        )
        await wait_for(lambda: server.state.limiter.waiting == 1)
        refused = await http.post(server.base_url + "/chat/completions", json=SLOW, headers=AUTH)
        assert error_of(refused, 429)["code"] == "too_many_runs" and refused.headers["retry-after"] == "1"
        timed_out = await queued
        assert error_of(timed_out, 429)["type"] == "rate_limit_error"
        slow.cancel()
        await asyncio.gather(slow, return_exceptions=True)
    await wait_for(lambda: server.state.limiter.running == 0)


def test_another_api_key_cannot_resume_a_paused_run(serve):
    server = serve(api_keys=[CLIENT_KEY, "sk-other"])
    messages, extra = paused_conversation(server)
    other = {"Authorization": "Bearer sk-other"}
    error = error_of(post(server, {"model": "rlm", "messages": messages, **extra}, headers=other), 404)
    assert error["code"] == "session_not_found"
    response = post(server, {"model": "rlm", "messages": messages, **extra})
    assert response.status_code == 200, "the owner still resumes it"


def test_upstream_failure_is_502_and_a_stream_error_event(serve):
    server = serve(model={"model_options": {"max_retries": 0}})
    broken = [{"role": "user", "content": "[broken] Hi"}]
    error = error_of(post(server, {"model": "rlm", "messages": broken}), 502)
    assert error["code"] == "upstream_error" and "the root model could not be called" in error["message"]
    with pytest.raises(openai.APIError, match="the root model could not be called"):
        list(client(server).chat.completions.create(model="rlm", messages=broken, stream=True))


async def test_upstream_failure_in_an_async_stream(serve):
    server = serve(model={"model_options": {"max_retries": 0}})
    api = openai.AsyncOpenAI(base_url=server.base_url, api_key=CLIENT_KEY, max_retries=0)
    stream = await api.chat.completions.create(
        model="rlm", messages=[{"role": "user", "content": "[broken] Hi"}], stream=True
    )
    with pytest.raises(openai.APIError, match="upstream model is down"):
        async for _ in stream:
            pass
