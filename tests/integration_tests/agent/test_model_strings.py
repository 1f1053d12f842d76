"""`RLMAgent` with model strings: the real openai client against the scripted server on loopback, streamed."""

from __future__ import annotations

from typing import Any

from rlm_plugins import RLMAgent
from rlm_plugins.agent import Done, SubCallSummary
from tests.unit_tests.agent._scripted import repl

STEPS = [
    repl("words = context.split()\nsaid = llm_query('Count these: ' + ' '.join(words))\nprint(said)"),
    repl("FINAL(f'{len(words)} words; the sub-model said {said}')"),
]


def script(body: dict[str, Any]) -> str:
    if body["model"] == "sub-model":
        return "three"
    step = sum(1 for m in body["messages"] if m["role"] == "assistant")
    return STEPS[min(step, len(STEPS) - 1)]


def agent_on(server: Any) -> RLMAgent:
    return RLMAgent(
        "openai/root-model",
        "openai/sub-model",
        sandbox="local",
        api_base=server.base_url,
        api_key="sk-test",
        model_kwargs={"num_retries": 0},
    )


def check(events: list) -> None:
    done = events[-1]
    assert isinstance(done, Done) and done.answer == "3 words; the sub-model said three"
    assert done.usage["openai/root-model"].calls == 2 and done.usage["openai/sub-model"].calls == 1
    assert done.total_usage.input_tokens > 0 and done.total_usage.output_tokens > 0
    sub = next(e for e in events if isinstance(e, SubCallSummary))
    assert sub.model == "openai/sub-model" and sub.response_chars == len("three")


def test_streamed_turn_over_http(scripted_openai) -> None:
    with agent_on(scripted_openai(script)) as agent:
        check(list(agent.chat("one two three", stream=True)))


async def test_async_streamed_turns_over_http(scripted_openai) -> None:
    async with agent_on(scripted_openai(script)) as agent:
        for _ in range(2):
            check([event async for event in agent.achat("one two three", stream=True)])
        assert agent.turns == 2
