"""The official `openai` client (sync and async) against the RLM server: plain, streaming, long context,
tools with two rounds of continuation, parallel tool calls and response_format."""

from __future__ import annotations

import json

import httpx
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.integration_tests.server._scripts import SUB_REPLY
from tests.integration_tests.server.conftest import CLIENT_KEY

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a zone.",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
}
ANSWERS = {"get_weather": "sunny, 21C", "get_time": "14:05"}


def client(server) -> OpenAI:
    return OpenAI(base_url=server.base_url, api_key=CLIENT_KEY, max_retries=0)


def aclient(server) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=server.base_url, api_key=CLIENT_KEY, max_retries=0)


def test_plain_completion_sums_root_and_sub_usage(server, upstream):
    response = client(server).chat.completions.create(model="rlm", messages=[{"role": "user", "content": "[plain] Hi"}])
    assert response.choices[0].message.content == SUB_REPLY + "!"
    assert response.choices[0].finish_reason == "stop"
    assert response.object == "chat.completion" and response.id.startswith("chatcmpl-")
    assert response.system_fingerprint.startswith("rlm-plugins-") and response.created > 0
    assert response.model == "rlm"
    roots = [r for r in upstream.requests if r["messages"][0]["role"] == "system"]
    subs = [r for r in upstream.requests if r["messages"][0]["role"] != "system"]
    assert len(roots) == 2 and len(subs) == 1
    by_model = response.model_extra["rlm"]["usage_by_model"]
    assert by_model["openai/root-model"]["calls"] == 2 and by_model["openai/sub-model"]["calls"] == 1
    total_in = sum(u["input_tokens"] for u in by_model.values())
    assert response.usage.prompt_tokens == total_in > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


async def test_plain_completion_async(server):
    response = await aclient(server).chat.completions.create(
        model="rlm", messages=[{"role": "user", "content": "[plain] Hi"}]
    )
    assert response.choices[0].message.content == SUB_REPLY + "!"


def test_long_message_moves_into_the_repl(server, upstream):
    doc = "hay " * 10_000 + "needle " * 3 + "hay " * 10_000
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "[long] " + doc}]
    response = client(server).chat.completions.create(model="rlm", messages=messages)
    assert response.choices[0].message.content == "3"
    roots = [r for r in upstream.requests if r["messages"][0]["role"] == "system"]
    assert all("needle needle" not in json.dumps(r) for r in roots), "the long message stayed out of the root prompt"


def test_streaming_sends_openai_chunks_with_progress_comments(server):
    chunks = list(
        client(server).chat.completions.create(
            model="rlm",
            messages=[{"role": "user", "content": "[plain] Hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == SUB_REPLY + "!"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert len({c.id for c in chunks}) == 1 and chunks[0].object == "chat.completion.chunk"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


def test_stream_body_carries_progress_as_sse_comments(server):
    body = {"model": "rlm", "messages": [{"role": "user", "content": "[plain] Hi"}], "stream": True}
    headers = {"Authorization": f"Bearer {CLIENT_KEY}"}
    with httpx.stream("POST", server.base_url + "/chat/completions", json=body, headers=headers, timeout=60) as r:
        lines = [line for line in r.iter_lines() if line]
    assert r.headers["content-type"].startswith("text/event-stream")
    comments = [json.loads(line.removeprefix(": rlm ")) for line in lines if line.startswith(": rlm ")]
    assert {c["event"] for c in comments} >= {"root_step", "code", "sub_call"}
    assert lines[-1] == "data: [DONE]"


async def test_streaming_async(server):
    stream = await aclient(server).chat.completions.create(
        model="rlm", messages=[{"role": "user", "content": "[plain] Hi"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == SUB_REPLY + "!"


def answer_calls(message) -> list[dict]:
    return [
        {"role": "tool", "tool_call_id": call.id, "content": ANSWERS[call.function.name]} for call in message.tool_calls
    ]


def test_tools_two_rounds_of_continuation_resume_the_same_repl(server):
    api = client(server)
    messages = [{"role": "user", "content": "[tools] Weather and time in Paris?"}]
    first = api.chat.completions.create(model="rlm", messages=messages, tools=[WEATHER, TIME])
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = first.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    messages += [first.choices[0].message.model_dump(exclude_none=True), *answer_calls(first.choices[0].message)]
    second = api.chat.completions.create(model="rlm", messages=messages, tools=[WEATHER, TIME])
    assert second.choices[0].finish_reason == "tool_calls"
    assert second.choices[0].message.tool_calls[0].function.name == "get_time"
    assert second.choices[0].message.tool_calls[0].id != call.id
    messages += [second.choices[0].message.model_dump(exclude_none=True), *answer_calls(second.choices[0].message)]
    third = api.chat.completions.create(model="rlm", messages=messages, tools=[WEATHER, TIME])
    assert third.choices[0].finish_reason == "stop"
    assert third.choices[0].message.content == "kept across pauses: sunny, 21C & 14:05"


async def test_tools_continuation_async_and_streamed(server):
    api = aclient(server)
    messages = [{"role": "user", "content": "[tools] Weather and time in Paris?"}]
    for _ in range(2):
        stream = await api.chat.completions.create(model="rlm", messages=messages, tools=[WEATHER, TIME], stream=True)
        chunks = [c async for c in stream]
        calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
        assistant = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": c.id, "type": "function", "function": c.function.model_dump()} for c in calls],
        }
        messages += [assistant] + [
            {"role": "tool", "tool_call_id": c.id, "content": ANSWERS[c.function.name]} for c in calls
        ]
    final = await api.chat.completions.create(model="rlm", messages=messages, tools=[WEATHER, TIME])
    assert final.choices[0].message.content == "kept across pauses: sunny, 21C & 14:05"


@pytest.mark.parametrize("parallel", [True, False])
def test_parallel_tool_calls(server, parallel):
    response = client(server).chat.completions.create(
        model="rlm",
        messages=[{"role": "user", "content": "[two] Weather in Paris and Rome?"}],
        tools=[WEATHER],
        parallel_tool_calls=parallel,
    )
    cities = [json.loads(c.function.arguments)["city"] for c in response.choices[0].message.tool_calls]
    assert cities == (["Paris", "Rome"] if parallel else ["Paris"])


def test_response_format_json_schema_feeds_a_bad_answer_back(server, upstream):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}},
        "required": ["city", "temp"],
        "additionalProperties": False,
    }
    response = client(server).chat.completions.create(
        model="rlm",
        messages=[{"role": "user", "content": "[json] Weather?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "weather", "schema": schema}},
    )
    assert json.loads(response.choices[0].message.content) == {"city": "Paris", "temp": 21}
    last_root = [r for r in upstream.requests if r["messages"][0]["role"] == "system"][-1]
    assert "missing the required keys" in json.dumps(last_root)


def test_response_format_json_object(server):
    response = client(server).chat.completions.create(
        model="rlm",
        messages=[{"role": "user", "content": "[json] Weather?"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(response.choices[0].message.content) == {"town": "Paris"}


def test_models_lists_the_served_models(server):
    assert [m.id for m in client(server).models.list().data] == ["rlm"]


async def test_long_message_and_response_format_async(server):
    api = aclient(server)
    doc = "hay " * 10_000 + "needle " * 2
    long = await api.chat.completions.create(model="rlm", messages=[{"role": "user", "content": "[long] " + doc}])
    assert long.choices[0].message.content == "2"
    structured = await api.chat.completions.create(
        model="rlm",
        messages=[{"role": "user", "content": "[json] Weather?"}],
        response_format={"type": "json_object"},
    )
    assert json.loads(structured.choices[0].message.content) == {"town": "Paris"}


async def test_parallel_tool_calls_async(server):
    response = await aclient(server).chat.completions.create(
        model="rlm",
        messages=[{"role": "user", "content": "[two] Weather in Paris and Rome?"}],
        tools=[WEATHER],
        parallel_tool_calls=False,
    )
    assert [json.loads(c.function.arguments)["city"] for c in response.choices[0].message.tool_calls] == ["Paris"]
