"""The OpenAI and Anthropic wire formats, replayed from cassettes: text, tokens, cached tokens and cost.

The OpenAI cassettes serve both OpenAI-format transports (the `openai` SDK and the lean HTTP one): each replays
the same recorded exchange.

Recording (`--record-mode=once` with the cassette removed) talks to the scripted servers on loopback; replaying
points the clients at a closed port, so only the cassette can answer.
"""

from __future__ import annotations

import socket

import pytest

from rlm_plugins.models import ChatModel, price
from tests.fakes.anthropic_server import ScriptedAnthropicServer

MESSAGES = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
]
OPENAI_USAGE = {"prompt_tokens": 2_048, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 1_920}}
ANTHROPIC_USAGE = {
    "input_tokens": 12,
    "cache_creation_input_tokens": 100,
    "cache_read_input_tokens": 1_900,
    "output_tokens": 4,
}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def default_cassette_name(request: pytest.FixtureRequest) -> str:
    """One cassette per test function, whichever transport the test is parametrized with."""
    return request.node.originalname


@pytest.fixture(params=["openai", "http"])
def openai_chat(request, vcr, scripted_openai) -> ChatModel:
    if vcr.write_protected:
        base = f"http://127.0.0.1:{_closed_port()}/v1"
    else:
        base = scripted_openai([{"content": "Paris.", "usage": OPENAI_USAGE}]).base_url
    chat = ChatModel(
        "openai/gpt-4o-mini", api_base=base, api_key="sk-test", max_retries=0, temperature=0.0, transport=request.param
    )
    assert chat.transport.name == request.param
    return chat


@pytest.fixture
def anthropic_chat(vcr):
    if vcr.write_protected:
        yield ChatModel("anthropic/claude-sonnet-4-5", api_base=f"http://127.0.0.1:{_closed_port()}", api_key="k")
        return
    with ScriptedAnthropicServer([{"text": "Paris.", "usage": ANTHROPIC_USAGE}]) as server:
        yield ChatModel("anthropic/claude-sonnet-4-5", api_base=server.base_url, api_key="k", max_retries=0)


def check_openai(completion, vcr) -> None:
    usage = completion.usage
    assert completion.text == "Paris."
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (2_048, 1_920, 4)
    assert usage.cost == pytest.approx(price("openai/gpt-4o-mini", 2_048, 4, cached_tokens=1_920))
    assert usage.cost < price("openai/gpt-4o-mini", 2_048, 4)
    if vcr.write_protected:
        assert vcr.all_played


def check_anthropic(completion, vcr) -> None:
    usage = completion.usage
    assert completion.text == "Paris."
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (2_012, 1_900, 4)
    expected = price("anthropic/claude-sonnet-4-5", 2_012, 4, cached_tokens=1_900, cache_write_tokens=100)
    assert usage.cost == pytest.approx(expected)
    if vcr.write_protected:
        assert vcr.all_played


@pytest.mark.vcr
def test_openai_wire_format_reports_cached_tokens(vcr, openai_chat):
    check_openai(openai_chat(MESSAGES), vcr)


@pytest.mark.vcr
async def test_openai_wire_format_reports_cached_tokens_async(vcr, openai_chat):
    check_openai(await openai_chat.acall(MESSAGES), vcr)


@pytest.mark.vcr
def test_anthropic_wire_format_reports_cached_tokens(vcr, anthropic_chat):
    check_anthropic(anthropic_chat(MESSAGES), vcr)


@pytest.mark.vcr
async def test_anthropic_wire_format_reports_cached_tokens_async(vcr, anthropic_chat):
    check_anthropic(await anthropic_chat.acall(MESSAGES), vcr)
