"""`ChatModel` over the real `openai`, `anthropic` and `litellm` clients against scripted servers on loopback:
pooled clients, usage with cached tokens, retries honouring Retry-After, and the process-wide concurrency limit."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anthropic
import openai
import pytest

from rlm_plugins.errors import ModelError, SubModelError
from rlm_plugins.models import ChatModel, ChatSubModel
from rlm_plugins.models.anthropic_sdk import AnthropicTransport
from rlm_plugins.models.base import Call
from tests.fakes import count_tokens
from tests.fakes.anthropic_server import ScriptedAnthropicServer
from tests.integration_tests._transport_kit import CACHED, MESSAGES, RATE_LIMITED, Sleeps, chat_on, unused_port


def _check_usage(completion, server) -> None:
    assert completion.text == "Paris."
    assert completion.model == "openai/scripted"
    usage = completion.usage
    assert (usage.calls, usage.cached_input_tokens) == (1, 3)
    assert usage.input_tokens == count_tokens("Be brief.Capital of France?")
    assert usage.output_tokens == count_tokens("Paris.")
    assert usage.cost is None
    assert server.requests[0]["model"] == "scripted"
    assert server.headers[0]["authorization"] == "Bearer sk-test"


def test_openai_transport_reports_usage_and_cached_tokens(scripted_openai):
    server = scripted_openai([{"content": "Paris.", "usage": CACHED}])
    chat = chat_on(server, transport="openai")
    assert chat.transport.name == "openai"
    _check_usage(chat(MESSAGES), server)


async def test_openai_transport_reports_usage_and_cached_tokens_async(scripted_openai):
    server = scripted_openai([{"content": "Paris.", "usage": CACHED}])
    _check_usage(await chat_on(server, transport="openai").acall(MESSAGES), server)


def test_litellm_transport_reports_the_same_usage(scripted_openai):
    server = scripted_openai([{"content": "Paris.", "usage": CACHED}])
    chat = chat_on(server, transport="litellm")
    assert chat.transport.name == "litellm"
    _check_usage(chat(MESSAGES), server)


def test_priced_models_cost_the_same_through_every_transport(scripted_openai):
    server = scripted_openai(["Paris."] * 2)
    costs = [chat_on(server, "openai/gpt-4o-mini", transport=t)(MESSAGES).usage.cost for t in ("openai", "litellm")]
    assert costs[0] is not None and costs[0] > 0
    assert costs[0] == pytest.approx(costs[1])


def test_clients_are_pooled_per_endpoint_and_key(scripted_openai):
    server = scripted_openai(["a", "b", "c"])
    first, second = chat_on(server, transport="openai"), chat_on(server, "openai/other", transport="openai")
    call = Call("scripted", [], api_base=server.base_url, api_key="sk-test")
    assert first.transport.sync_client(call) is second.transport.sync_client(call)
    other_key = Call("scripted", [], api_base=server.base_url, api_key="sk-other")
    assert first.transport.sync_client(call) is not first.transport.sync_client(other_key)
    assert [first("x").text, second("y").text] == ["a", "b"]


async def test_async_clients_are_pooled_per_event_loop(scripted_openai):
    server = scripted_openai(lambda body: "ok")
    chat = chat_on(server, transport="openai")
    call = Call("scripted", [], api_base=server.base_url, api_key="sk-test")
    here = chat.transport.async_client(call)
    assert chat.transport.async_client(call) is here

    async def elsewhere():
        return chat.transport.async_client(call), (await chat.acall("hi")).text

    other, text = await asyncio.to_thread(asyncio.run, elsewhere())
    assert other is not here and text == "ok"
    assert (await chat.acall("hi")).text == "ok"


@pytest.mark.parametrize("transport", ["openai", "http", "litellm"])
def test_retries_429_after_the_retry_after_wait(scripted_openai, transport):
    server = scripted_openai([RATE_LIMITED, "Paris."])
    chat = chat_on(server, transport=transport, max_retries=2)
    chat.sleep = sleeps = Sleeps()
    assert chat(MESSAGES).text == "Paris."
    assert sleeps == [0.25]
    assert len(server.requests) == 2


@pytest.mark.parametrize("transport", ["openai", "http", "litellm"])
async def test_retries_429_after_the_retry_after_wait_async(scripted_openai, transport):
    server = scripted_openai([RATE_LIMITED, {"status": 503, "message": "busy"}, "Paris."])
    chat = chat_on(server, transport=transport, max_retries=2)
    chat.asleep = (sleeps := Sleeps()).asleep
    assert (await chat.acall(MESSAGES)).text == "Paris."
    assert sleeps[0] == 0.25 and len(sleeps) == 2
    assert len(server.requests) == 3


def test_retry_waits_really_pass_before_the_next_attempt(scripted_openai):
    arrivals: list[float] = []

    def script(body):
        arrivals.append(time.monotonic())
        return RATE_LIMITED if len(arrivals) == 1 else "ok"

    server = scripted_openai(script)
    assert chat_on(server, max_retries=1)("hi").text == "ok"
    assert arrivals[1] - arrivals[0] >= 0.25


def test_gives_up_after_max_retries_with_a_one_line_error(scripted_openai):
    server = scripted_openai([RATE_LIMITED] * 3)
    chat = chat_on(server, max_retries=2, transport="openai")
    chat.sleep = Sleeps()
    with pytest.raises(ModelError, match="rate limited") as info:
        chat("hi")
    assert isinstance(info.value.cause, openai.RateLimitError)
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("reply", "hint"),
    [
        ({"status": 401, "message": "Incorrect API key provided"}, "check the key passed as api_key="),
        ({"status": 404, "message": "The model does not exist"}, '"provider/model"'),
        ({"status": 400, "message": "This model's maximum context length is 8192 tokens."}, "shorten"),
        ({"delay": 5, "content": "late"}, "timeout=0.5s"),
    ],
)
@pytest.mark.parametrize("transport", ["openai", "http"])
def test_openai_compatible_errors_say_what_to_change(scripted_openai, reply, hint, transport):
    server = scripted_openai([reply])
    with pytest.raises(ModelError, match=hint):
        chat_on(server, max_retries=0, timeout=0.5, transport=transport)("hi")


@pytest.mark.parametrize("transport", ["openai", "http"])
def test_unreachable_endpoint_names_it(transport):
    api_base = f"http://127.0.0.1:{unused_port()}/v1"
    with pytest.raises(SubModelError, match="check api_base= and the network"):
        chat = ChatModel("openai/x", api_base=api_base, api_key="k", max_retries=0, transport=transport)
        ChatSubModel(chat).query("hi")


def test_missing_openai_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelError, match="set OPENAI_API_KEY or pass api_key="):
        ChatModel("openai/gpt-4o-mini", max_retries=0)("hi")


def _tracking_server(scripted_openai):
    lock = threading.Lock()
    state = {"active": 0, "peak": 0}

    def script(body):
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
        time.sleep(0.01)
        with lock:
            state["active"] -= 1
        return "echo " + body["messages"][-1]["content"]

    return scripted_openai(script), state


@pytest.mark.parametrize("transport", ["openai", "http"])
def test_64_threads_never_exceed_the_model_concurrency_limit(scripted_openai, transport):
    server, state = _tracking_server(scripted_openai)
    sub = ChatSubModel(chat_on(server, f"openai/limited-sync-{transport}", max_concurrency=4, transport=transport))
    with ThreadPoolExecutor(64) as pool:
        texts = [c.text for c in pool.map(sub.query, [str(i) for i in range(64)])]
    assert texts == [f"echo {i}" for i in range(64)]
    assert state["peak"] <= 4


@pytest.mark.parametrize("transport", ["openai", "http"])
async def test_64_tasks_never_exceed_the_model_concurrency_limit(scripted_openai, transport):
    server, state = _tracking_server(scripted_openai)
    sub = ChatSubModel(chat_on(server, f"openai/limited-async-{transport}", max_concurrency=4, transport=transport))
    other = ChatSubModel(chat_on(server, f"openai/limited-async-{transport}", transport=transport))
    completions = await asyncio.gather(*(s.aquery(str(i)) for i in range(32) for s in (sub, other)))
    assert sorted(c.text for c in completions) == sorted(f"echo {i}" for i in range(32) for _ in range(2))
    assert state["peak"] <= 4


def test_anthropic_transport_marks_cache_breakpoints_and_reports_cached_tokens():
    usage = {"input_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20}
    with ScriptedAnthropicServer([{"text": "Paris.", "usage": usage}]) as server:
        chat = ChatModel("anthropic/claude-sonnet-4-5", api_base=server.base_url, api_key="sk-ant", max_retries=0)
        assert isinstance(chat.transport, AnthropicTransport)
        completion = chat([*MESSAGES, {"role": "assistant", "content": "Hmm."}, {"role": "user", "content": "Go"}])
    (request,) = server.requests
    assert request["model"] == "claude-sonnet-4-5" and request["max_tokens"] > 0
    assert request["system"] == [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    marks = [block.get("cache_control") for m in request["messages"] for block in m["content"]]
    assert marks == [None, None, {"type": "ephemeral"}]
    assert completion.text == "Paris."
    assert (completion.usage.input_tokens, completion.usage.cached_input_tokens) == (125, 100)
    plain = ChatModel("anthropic/claude-sonnet-4-5").params
    assert completion.usage.cost is not None and plain == {}


async def test_anthropic_transport_async_and_without_cache_marks():
    with ScriptedAnthropicServer(["Paris."]) as server:
        chat = ChatModel(
            "anthropic/claude-sonnet-4-5", api_base=server.base_url, api_key="k", cache_prompts=False, stop="END"
        )
        completion = await chat.acall(MESSAGES)
    (request,) = server.requests
    assert "cache_control" not in str(request)
    assert request["stop_sequences"] == ["END"]
    assert completion.text == "Paris." and completion.usage.cached_input_tokens == 0


def test_anthropic_errors_are_model_errors():
    api_base = f"http://127.0.0.1:{unused_port()}"
    with pytest.raises(ModelError, match="check api_base=") as info:
        ChatModel("anthropic/claude-sonnet-4-5", api_base=api_base, api_key="k", max_retries=0)("hi")
    assert isinstance(info.value.cause, anthropic.APIConnectionError)


class Waits:
    """Records a rate limiter's waits instead of sleeping them."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self.lock:
            self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self(seconds)
        await asyncio.sleep(0)


def _rate_limited(server, model: str) -> tuple[ChatModel, Waits]:
    chat = chat_on(server, model, rpm=6)
    waits = Waits()
    chat.limits.rate.sleep, chat.limits.rate.asleep = waits, waits.asleep
    return chat, waits


def _spaced_at_ten_seconds(waits: list[float]) -> None:
    assert len(waits) == 63
    assert sorted(waits) == pytest.approx([10.0 * k for k in range(1, 64)], abs=0.5)


def test_64_threads_queue_behind_the_request_rate(scripted_openai):
    server = scripted_openai(lambda body: "ok")
    chat, waits = _rate_limited(server, "openai/rate-limited-sync")
    with ThreadPoolExecutor(64) as pool:
        texts = [c.text for c in pool.map(chat, [str(i) for i in range(64)])]
    assert texts == ["ok"] * 64 and len(server.requests) == 64
    _spaced_at_ten_seconds(waits.waits)


async def test_64_tasks_queue_behind_the_request_rate(scripted_openai):
    server = scripted_openai(lambda body: "ok")
    chat, waits = _rate_limited(server, "openai/rate-limited-async")
    completions = await asyncio.gather(*(chat.acall(str(i)) for i in range(64)))
    assert [c.text for c in completions] == ["ok"] * 64 and len(server.requests) == 64
    _spaced_at_ten_seconds(waits.waits)
