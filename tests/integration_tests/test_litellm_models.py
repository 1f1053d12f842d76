"""LiteLLMChat and LiteLLMSubModel through the real litellm client, against the scripted OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlm_plugins.errors import ConfigurationError, ModelError, SubModelError
from rlm_plugins.standalone import LiteLLMChat, LiteLLMSubModel
from tests.fakes import count_tokens

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm")

MODEL = "openai/scripted"
BOUNDED = {"num_retries": 0, "max_retries": 0, "timeout": 10}
MESSAGES = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
]


def _chat(server, model: str = MODEL, **kwargs) -> LiteLLMChat:
    return LiteLLMChat(model, api_base=server.base_url, api_key="sk-test", **{**BOUNDED, **kwargs})


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _echo(body: dict) -> str:
    return "echo: " + body["messages"][-1]["content"]


def _check_paris(completion, server) -> None:
    assert completion.text == "Paris."
    assert completion.model == MODEL
    prompt = "".join(m["content"] for m in MESSAGES)
    assert completion.usage.calls == 1
    assert completion.usage.input_tokens == count_tokens(prompt)
    assert completion.usage.output_tokens == count_tokens("Paris.")
    assert completion.usage.cost is None
    (request,) = server.requests
    assert request["model"] == "scripted"
    assert request["messages"] == MESSAGES
    assert server.headers[0]["authorization"] == "Bearer sk-test"


def test_chat_returns_text_and_usage(scripted_openai):
    server = scripted_openai(["Paris."])
    _check_paris(_chat(server)(MESSAGES), server)


async def test_chat_returns_text_and_usage_async(scripted_openai):
    server = scripted_openai(["Paris."])
    _check_paris(await _chat(server).acall(MESSAGES), server)


def test_chat_forwards_litellm_options(scripted_openai):
    server = scripted_openai(["ok", "ok"])
    chat = _chat(server, temperature=0.0, max_tokens=7)
    chat("hi")
    chat("hi", max_tokens=3)
    first, second = server.requests
    assert first["messages"] == [{"role": "user", "content": "hi"}]
    assert (first["temperature"], first["max_tokens"]) == (0.0, 7)
    assert second["max_tokens"] == 3


async def test_chat_forwards_litellm_options_async(scripted_openai):
    server = scripted_openai(["ok"])
    await _chat(server, temperature=0.0, max_tokens=7).acall("hi", max_tokens=3)
    (request,) = server.requests
    assert (request["temperature"], request["max_tokens"]) == (0.0, 3)


def test_chat_cost_when_litellm_knows_the_model(scripted_openai):
    server = scripted_openai(["Paris."])
    completion = _chat(server, "openai/gpt-4o-mini")(MESSAGES)
    assert completion.usage.cost is not None
    assert completion.usage.cost > 0


async def test_chat_cost_when_litellm_knows_the_model_async(scripted_openai):
    server = scripted_openai(["Paris."])
    completion = await _chat(server, "openai/gpt-4o-mini").acall(MESSAGES)
    assert completion.usage.cost is not None
    assert completion.usage.cost > 0


def test_chat_survives_missing_usage_and_content(scripted_openai):
    server = scripted_openai([{"content": "no usage", "usage": None}, {"content": None, "tool_calls": [{"name": "f"}]}])
    chat = _chat(server)
    first, second = chat("hi"), chat("hi")
    assert first.text == "no usage"
    assert first.usage.calls == 1
    assert first.usage.input_tokens >= 0
    assert second.text == ""


async def test_chat_survives_missing_usage_and_content_async(scripted_openai):
    server = scripted_openai([{"content": "no usage", "usage": None}])
    completion = await _chat(server).acall("hi")
    assert completion.text == "no usage"
    assert completion.usage.calls == 1


def test_submodel_query(scripted_openai):
    server = scripted_openai(_echo)
    sub = LiteLLMSubModel(_chat(server))
    completion = sub.query("count the words")
    assert sub.name == MODEL
    assert completion.text == "echo: count the words"
    assert completion.usage.output_tokens == count_tokens("echo: count the words")
    assert server.requests[0]["messages"] == [{"role": "user", "content": "count the words"}]


async def test_submodel_query_async(scripted_openai):
    server = scripted_openai(_echo)
    completion = await LiteLLMSubModel(_chat(server)).aquery("count the words")
    assert completion.text == "echo: count the words"
    assert server.requests[0]["messages"] == [{"role": "user", "content": "count the words"}]


def test_submodel_from_model_string(scripted_openai):
    server = scripted_openai(["fine"])
    sub = LiteLLMSubModel(MODEL, api_base=server.base_url, api_key="sk-test", **BOUNDED)
    assert (sub.name, sub.query("hi").text) == (MODEL, "fine")


def test_submodel_rejects_options_with_a_ready_chat(scripted_openai):
    server = scripted_openai([])
    with pytest.raises(ConfigurationError, match="temperature"):
        LiteLLMSubModel(_chat(server), temperature=0.0)


def test_submodel_serves_concurrent_calls(scripted_openai):
    server = scripted_openai(_echo)
    sub = LiteLLMSubModel(_chat(server))
    prompts = [f"chunk {i}" for i in range(32)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        texts = [c.text for c in pool.map(sub.query, prompts)]
    assert texts == [f"echo: {p}" for p in prompts]
    assert len(server.requests) == 32


async def test_submodel_serves_concurrent_calls_async(scripted_openai):
    server = scripted_openai(_echo)
    sub = LiteLLMSubModel(_chat(server))
    prompts = [f"chunk {i}" for i in range(32)]
    completions = await asyncio.gather(*(sub.aquery(p) for p in prompts))
    assert [c.text for c in completions] == [f"echo: {p}" for p in prompts]
    assert len(server.requests) == 32


CONTEXT_OVERFLOW = "This model's maximum context length is 8192 tokens."
ERRORS = [
    ({"status": 401, "message": "Incorrect API key provided"}, litellm.AuthenticationError, "api_key="),
    ({"status": 404, "message": "The model does not exist"}, litellm.NotFoundError, '"provider/model"'),
    ({"status": 429, "message": "Rate limit reached"}, litellm.RateLimitError, "lower the concurrency"),
    ({"status": 400, "message": "bad messages"}, litellm.BadRequestError, "rejected"),
    ({"status": 400, "message": CONTEXT_OVERFLOW}, litellm.ContextWindowExceededError, "shorten"),
    ({"status": 500, "message": "boom"}, litellm.InternalServerError, "retry later"),
    ({"delay": 5, "content": "too late"}, litellm.Timeout, "timeout=0.5s"),
]
ERROR_IDS = ["auth", "not-found", "rate-limit", "bad-request", "context-window", "server-error", "timeout"]


@pytest.mark.parametrize(("reply", "cause", "hint"), ERRORS, ids=ERROR_IDS)
def test_chat_maps_errors(scripted_openai, reply, cause, hint):
    server = scripted_openai([reply])
    with pytest.raises(ModelError, match=hint) as info:
        _chat(server, timeout=0.5)("hi")
    assert isinstance(info.value.cause, cause)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(f"{MODEL}: ")


@pytest.mark.parametrize(("reply", "cause", "hint"), ERRORS, ids=ERROR_IDS)
async def test_chat_maps_errors_async(scripted_openai, reply, cause, hint):
    server = scripted_openai([reply])
    with pytest.raises(ModelError, match=hint) as info:
        await _chat(server, timeout=0.5).acall("hi")
    assert isinstance(info.value.cause, cause)
    assert "\n" not in str(info.value)


def test_chat_unreachable_endpoint():
    api_base = f"http://127.0.0.1:{_unused_port()}/v1"
    chat = LiteLLMChat(MODEL, api_base=api_base, api_key="sk-test", **BOUNDED)
    with pytest.raises(ModelError, match="check api_base= and the network") as info:
        chat("hi")
    assert api_base in str(info.value)
    assert "refused" in str(info.value).lower()
    assert info.value.cause is not None
    assert info.value.__cause__ is None and info.value.__suppress_context__


async def test_chat_unreachable_endpoint_async():
    api_base = f"http://127.0.0.1:{_unused_port()}/v1"
    chat = LiteLLMChat(MODEL, api_base=api_base, api_key="sk-test", **BOUNDED)
    with pytest.raises(ModelError, match="check api_base= and the network") as info:
        await chat.acall("hi")
    assert api_base in str(info.value)


def test_chat_unknown_provider_names_the_model_format():
    with pytest.raises(ModelError, match='"provider/model"'):
        LiteLLMChat("no-such-model", **BOUNDED)("hi")


def test_submodel_error_is_a_submodel_error(scripted_openai):
    server = scripted_openai([{"status": 401, "message": "Incorrect API key provided"}])
    with pytest.raises(SubModelError, match="api_key=") as info:
        LiteLLMSubModel(_chat(server)).query("hi")
    assert isinstance(info.value.cause, litellm.AuthenticationError)


async def test_submodel_error_is_a_submodel_error_async(scripted_openai):
    server = scripted_openai([{"status": 429, "message": "Rate limit reached"}])
    with pytest.raises(SubModelError, match="retry later") as info:
        await LiteLLMSubModel(_chat(server)).aquery("hi")
    assert isinstance(info.value.cause, litellm.RateLimitError)


def test_missing_litellm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "litellm", None)
    with pytest.raises(ConfigurationError, match=r'pip install "rlm-plugins\[standalone\]"'):
        LiteLLMChat(MODEL)


def test_empty_model_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="openai/gpt-4o-mini"):
        LiteLLMChat("")


def test_import_does_not_import_litellm():
    code = "import sys, rlm_plugins.standalone; assert 'litellm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def _cassette_chat(vcr, scripted_openai) -> LiteLLMChat:
    """Replaying: point at a closed port, so only the cassette can answer. Recording: start the scripted server."""
    server_url = None if vcr.write_protected else scripted_openai(["Paris."]).base_url
    api_base = server_url or f"http://127.0.0.1:{_unused_port()}/v1"
    return LiteLLMChat(MODEL, api_base=api_base, api_key="sk-test", temperature=0.0, **BOUNDED)


@pytest.mark.vcr
def test_chat_replays_from_cassette(vcr, scripted_openai):
    completion = _cassette_chat(vcr, scripted_openai)(MESSAGES)
    assert completion.text == "Paris."
    assert completion.usage.input_tokens == count_tokens("".join(m["content"] for m in MESSAGES))
    if vcr.write_protected:
        assert vcr.all_played


@pytest.mark.vcr
async def test_chat_replays_from_cassette_async(vcr, scripted_openai):
    completion = await _cassette_chat(vcr, scripted_openai).acall(MESSAGES)
    assert completion.text == "Paris."
    if vcr.write_protected:
        assert vcr.all_played
