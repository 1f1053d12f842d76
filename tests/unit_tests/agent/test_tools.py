"""`register_tool`: sync and async tools in the REPL, listed in the root prompt, schemas from hints and docstrings."""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest

from rlm_plugins import RLMAgent
from rlm_plugins.agent import ToolSchemaError
from tests.unit_tests.agent._scripted import ScriptedRoot, repl

SCRIPTS = {
    "t": [repl("got = [lookup('k1'), await_lookup('k2', times=3)]\nprint(got)"), repl("FINAL(got)")],
    "later": [repl("print(shout('hi'))"), repl("FINAL(shout('hi'))")],
}
STORE = {"k1": "v1", "k2": "v2"}


def lookup(key: str) -> str:
    """Look a key up in the store.

    Args:
        key: the key to look up.
    """
    return STORE[key]


async def await_lookup(key: str, times: int = 1) -> str:
    """Look a key up, asynchronously, and repeat the value."""
    await asyncio.sleep(0)
    return STORE[key] * times


def new_agent(sandbox: str = "inprocess") -> tuple[RLMAgent, ScriptedRoot]:
    root = ScriptedRoot(SCRIPTS)
    agent = RLMAgent(root, sub_model=lambda p: "", sandbox=sandbox, tools={"lookup": lookup})
    agent.register_tool("await_lookup", await_lookup)
    return agent, root


@pytest.mark.parametrize("sandbox", ["inprocess", "local"])
def test_sync_and_async_tools_run_from_repl_code(sandbox: str) -> None:
    agent, root = new_agent(sandbox)
    with agent:
        assert agent.chat("[t] use the tools") == '["v1", "v2v2v2"]'
    system = root.requests[0][0]["content"]
    assert "- `lookup(key: str) -> str`: Look a key up in the store." in system
    assert "- `await_lookup(key: str, times: int = 1) -> str`: Look a key up, asynchronously" in system


async def test_tools_in_an_async_turn() -> None:
    agent, _ = new_agent("local")
    async with agent:
        assert await agent.achat("[t] use the tools") == '["v1", "v2v2v2"]'


def test_a_tool_registered_between_turns_is_offered_from_the_next_turn() -> None:
    agent, root = new_agent()
    with agent:
        agent.chat("[t] first")
        assert "shout(" not in root.requests[-1][0]["content"]
        agent.register_tool("shout", lambda text: text.upper() + "!", description="Shout the text back.")
        assert agent.chat("[later] now") == "HI!"
        assert "- `shout(text)`: Shout the text back." in root.requests[-1][0]["content"]


def test_schema_from_type_hints_and_docstring() -> None:
    def search(query: str, limit: int = 5, kinds: list[str] | None = None, mode: Literal["a", "b"] = "a") -> list:
        """Search the archive.

        Longer explanation that the summary leaves out.

        Args:
            query: what to look for,
                over several lines.
            limit: how many hits at most.
        """
        return []

    agent = RLMAgent(lambda m: "", sub_model=lambda p: "", sandbox="inprocess")
    schema = agent.register_tool("search", search)
    assert schema.as_dict() == {
        "name": "search",
        "description": "Search the archive.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "what to look for, over several lines."},
                "limit": {"type": "integer", "description": "how many hits at most.", "default": 5},
                "kinds": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}], "default": None},
                "mode": {"enum": ["a", "b"], "default": "a"},
            },
            "required": ["query"],
        },
    }
    assert not schema.is_async and agent.register_tool("al", await_lookup).is_async
    assert [t.name for t in agent.tools] == ["search", "al"]


@pytest.mark.parametrize("name", ["llm_query", "FINAL", "context", "history_3", "not a name", "_hidden", "docs"])
def test_names_the_repl_uses_are_refused(name: str) -> None:
    agent = RLMAgent(lambda m: "", sub_model=lambda p: "", sandbox="inprocess")
    agent.add_context("docs", "some text")
    with agent, pytest.raises(ToolSchemaError, match="name"):
        agent.register_tool(name, lookup)


def test_a_non_callable_is_refused() -> None:
    agent = RLMAgent(lambda m: "", sub_model=lambda p: "", sandbox="inprocess")
    with pytest.raises(ToolSchemaError, match="not callable"):
        agent.register_tool("x", 42)  # type: ignore[arg-type]
