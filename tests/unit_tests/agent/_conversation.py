"""The 5-turn conversation every sandbox kind runs: turn 4 uses a variable turn 1 built, tools sync and async."""

from __future__ import annotations

import asyncio
from typing import Any

from rlm_plugins import RLMAgent
from tests.unit_tests.agent._scripted import ScriptedRoot, echo_sub, repl

WORDS = " ".join(f"w{i % 3000}" for i in range(6000))  # 6,000 words, 3,000 distinct: a long first message
DOCS = "invoice line\n" * 5_000

SCRIPTS = {
    "t0": [repl("index = {w: i for i, w in enumerate(context.split())}\nprint(len(index))"), repl("FINAL(len(index))")],
    "t1": [repl("forecast = weather('Oslo', days=2)\nprint(forecast)"), repl("FINAL(forecast)")],
    "t2": [repl("rate = await_rate('EUR')\nprint(rate)"), repl("FINAL(rate * 2)")],
    "t3": [repl("FINAL([len(index), index['w7'], docs.count('invoice'), context])")],
    "t4": [repl("said = llm_query('summarise: ' + history[-1]['content'])\nprint(said)"), repl("FINAL(said)")],
}
MESSAGES = [f"[t0] {WORDS}", "[t1] weather?", "[t2] rate?", "[t3] recall", "[t4] summarise"]


def weather(city: str, days: int = 1) -> str:
    """The forecast for a city.

    Args:
        city: the city's name.
        days: how many days ahead.
    """
    return f"{city}: sunny for {days} days"


async def await_rate(currency: str) -> float:
    """How many dollars one unit of `currency` is worth."""
    await asyncio.sleep(0)
    return {"EUR": 1.5}.get(currency, 1.0)


def new_agent(sandbox: str, **options: Any) -> tuple[RLMAgent, ScriptedRoot]:
    root = ScriptedRoot(SCRIPTS)
    agent = RLMAgent(root, sub_model=echo_sub(), sandbox=sandbox, **options)
    agent.register_tool("weather", weather)
    agent.register_tool("await_rate", await_rate)
    agent.add_context("docs", DOCS)
    return agent, root


def converse(agent: RLMAgent, mode: str) -> list[Any]:
    if mode == "sync":
        return [agent.chat(message) for message in MESSAGES]

    async def go() -> list[Any]:
        return [await agent.achat(message) for message in MESSAGES]

    return asyncio.run(go())


def check(agent: RLMAgent, answers: list[Any]) -> None:
    assert answers[:3] == ["3001", "Oslo: sunny for 2 days", "3.0"]
    assert answers[3] == '[3001, 3008, 5000, "[t3] recall"]'  # `index` from turn 0, `docs`, this turn's context
    assert answers[4] == f"sub saw {len('summarise: FINAL: ' + answers[3])} chars"
    assert agent.turns == 5
    assert agent.last_result is not None and agent.last_result.finish_reason == "final"
