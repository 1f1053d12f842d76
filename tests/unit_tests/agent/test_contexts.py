"""`add_context` (str, bytes, JSON data, files) and enforced mode: large values never enter a root prompt."""

from __future__ import annotations

import json

import pytest

from rlm_plugins import RLMAgent, create_enforced_agent
from rlm_plugins.agent import ContextInPromptError
from rlm_plugins.errors import ConfigurationError, RLMError
from tests.unit_tests.agent._scripted import ScriptedRoot, repl

BIG = "needle-free text. " * 20_000  # 360,000 characters
SCRIPTS = {
    "kinds": [
        repl(
            "print(type(text).__name__, type(raw).__name__, type(table).__name__, type(notes).__name__)\n"
            "kinds = [type(text).__name__, len(raw), table['rows'][2], notes.count('line')]"
        ),
        repl("FINAL(kinds)"),
    ],
    "again": [repl("FINAL([len(text), len(raw)])")],
    "size": [repl("FINAL(len(context))")],
}


def agent_with(root: ScriptedRoot, **options) -> RLMAgent:
    return RLMAgent(root, sub_model=lambda p: "", sandbox="inprocess", **options)


@pytest.mark.parametrize("sandbox", ["inprocess", "local"])
def test_every_kind_of_context_reaches_the_repl_and_stays(sandbox: str, tmp_path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("line\n" * 30_000)
    root = ScriptedRoot(SCRIPTS)
    with RLMAgent(root, sub_model=lambda p: "", sandbox=sandbox) as agent:
        agent.add_context("text", BIG)
        agent.add_context("raw", b"\x00\x01" * 50_000)
        agent.add_context("table", {"rows": list(range(10_000))})
        agent.add_context("notes", notes)
        assert json.loads(agent.chat("[kinds] what is there?")) == ["str", 100_000, 2, 30_000]
        assert json.loads(agent.chat("[again] still?")) == [len(BIG), 100_000]
    for request in root.requests:
        sent = "".join(m["content"] for m in request)
        assert "needle-free text. " * 20 not in sent  # previews only
        assert len(sent) < 20_000
    question = root.requests[0][1]["content"]
    assert f"- `text`: str, {len(BIG):,} characters; begins: 'needle-free text." in question
    assert "- `raw`: bytes, 100,000 bytes" in question and "- `table`: dict, 1 keys" in question
    assert "- `notes`: file notes.txt, 150,000 bytes" in question


async def test_aadd_context_is_the_async_twin() -> None:
    root = ScriptedRoot(SCRIPTS)
    async with RLMAgent(root, sub_model=lambda p: "", sandbox="local") as agent:
        await agent.aadd_context("text", BIG)
        await agent.aadd_context("raw", b"12")
        assert json.loads(await agent.achat("[again] sizes")) == [len(BIG), 2]


def test_a_long_message_goes_to_the_repl_only() -> None:
    root = ScriptedRoot(SCRIPTS)
    message = "[size] " + BIG
    with agent_with(root) as agent:
        assert agent.chat(message) == str(len(message))
    question = root.requests[0][1]["content"]
    assert f"is {len(message):,} characters (str) long, too long for this prompt" in question
    assert BIG[:2_000] not in question
    assert agent.memory.exchanges[0].message.startswith(f"(a long message of {len(message):,} characters")


def test_a_short_message_is_quoted() -> None:
    root = ScriptedRoot(SCRIPTS)
    with agent_with(root) as agent:
        agent.chat("[size] short one")
    assert "The user's new message (also in the REPL as `context`):\n[size] short one" in root.requests[0][1]["content"]


def test_inline_context_is_shown_in_full_unless_enforced() -> None:
    root = ScriptedRoot(SCRIPTS)
    with agent_with(root) as agent:
        agent.add_context("style", "Answer tersely. " * 300, inline=True)  # 4,800 characters
        agent.chat("[size] hi")
    assert "Answer tersely. " * 300 in root.requests[0][1]["content"]
    enforced = create_enforced_agent(ScriptedRoot(SCRIPTS), sub_model=lambda p: "", sandbox="inprocess")
    with enforced, pytest.raises(ContextInPromptError, match="max_prompt_context=2,000") as caught:
        enforced.add_context("style", "Answer tersely. " * 300, inline=True)
    assert isinstance(caught.value, RLMError) and "style" not in enforced.contexts


def test_enforced_agent_keeps_small_inline_contexts_and_long_messages_out_of_prompts() -> None:
    root = ScriptedRoot(SCRIPTS)
    with create_enforced_agent(root, sub_model=lambda p: "", sandbox="inprocess") as agent:
        assert agent.enforced
        agent.add_context("style", "Answer tersely.", inline=True)
        agent.add_context("text", BIG)
        assert agent.chat("[size] " + "x" * 3_000) == "3007"  # over 2,000: only in the REPL
    question = root.requests[0][1]["content"]
    assert "`style`:\nAnswer tersely." in question and "x" * 2_001 not in question


def test_enforced_agent_refuses_a_setting_that_would_stuff_prompts() -> None:
    with pytest.raises(ContextInPromptError, match="inline_limit"):
        create_enforced_agent(lambda m: "", sub_model=lambda p: "", sandbox="inprocess", inline_limit=10_000)
    agent = create_enforced_agent(
        lambda m: "", sub_model=lambda p: "", sandbox="inprocess", max_prompt_context=20_000, inline_limit=10_000
    )
    assert agent.inline_limit == 10_000


def test_inline_needs_text_and_paths_must_exist(tmp_path) -> None:
    agent = agent_with(ScriptedRoot(SCRIPTS))
    with pytest.raises(ConfigurationError, match="takes a str"):
        agent.add_context("table", {"a": 1}, inline=True)
    with pytest.raises(ConfigurationError, match="not a readable file"):
        agent.add_context("gone", tmp_path / "missing.txt")
