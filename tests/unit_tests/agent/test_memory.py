"""Conversation memory: over 50 turns the root prompt stays under a fixed size, while the REPL keeps every turn."""

from __future__ import annotations

import pytest

from rlm_plugins import RLMAgent
from rlm_plugins.agent._memory import Memory
from tests.unit_tests.agent._scripted import ScriptedRoot, repl

MEMORY_CHARS = 6_000
INLINE_LIMIT = 4_000
PROMPT_BOUND = 20_000
"""Characters any root request may take: the system prompt (about 4,000), the memory, the inline message, and the
within-turn steps; a conversation that went into the prompt whole would pass it by turn 8."""

SCRIPTS = {
    "m": [repl("reply = (context[:40] + ' ') * 25\nprint(len(reply))"), repl("FINAL(reply)")],
    "count": [repl("FINAL(sorted(int(k.split('_')[1]) for k in globals() if k.startswith('history_')))")],
}


def message(turn: int) -> str:
    return f"[m] turn {turn:02d} " + "lorem ipsum dolor " * 80  # about 1,450 characters


@pytest.mark.parametrize("sandbox", ["inprocess", "local"])
def test_root_prompt_stays_bounded_over_fifty_turns(sandbox: str) -> None:
    root = ScriptedRoot(SCRIPTS)
    agent = RLMAgent(
        root, sub_model=lambda p: "", sandbox=sandbox, memory_chars=MEMORY_CHARS, inline_limit=INLINE_LIMIT
    )
    with agent:
        sizes_by_turn = []
        for turn in range(50):
            before = len(root.requests)
            answer = agent.chat(message(turn))
            assert answer.startswith(f"[m] turn {turn:02d}") and len(answer) > 1_000
            sizes_by_turn.append(max(root.prompt_sizes()[before:]))
        assert agent.chat("[count]") == str(list(range(50)))  # every turn's messages are still in the REPL
    said = sum(len(message(t)) + 1_025 for t in range(50))
    assert said > 5 * PROMPT_BOUND  # the conversation itself is far larger than the bound
    assert max(sizes_by_turn) <= PROMPT_BOUND, sizes_by_turn
    assert max(sizes_by_turn[25:]) - min(sizes_by_turn[25:]) < 200  # flat once the oldest turns are left out
    last = root.requests[-1][1]["content"]
    assert "turns 0 to" in last and "`history_0`" in last  # the oldest turns are compacted out, and said where
    assert "- turn 49, user: [m] turn 49" in last and "- turn 40, user: [m] turn 40 lorem ipsum" in last
    assert "- turn 2, user:" not in last


def test_memory_render_respects_its_size_at_every_length() -> None:
    memory = Memory(max_chars=3_000, keep_recent=2)
    assert memory.render() == ""
    for turn in range(200):
        memory.add(turn, f"question {turn} " + "q" * (turn * 37 % 5_000), f"answer {turn} " + "a" * (turn * 53 % 4_000))
        text = memory.render()
        assert len(text) <= 3_000
        assert f"turn {turn}, user: question {turn}" in text
    assert "(turns 0 to" in text
