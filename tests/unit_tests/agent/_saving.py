"""A conversation to save and reload: what it builds, and the checks a reloaded agent must pass on any sandbox."""

from __future__ import annotations

import pathlib
from typing import Any

from rlm_plugins import RLMAgent
from rlm_plugins.agent import SaveReport
from tests.unit_tests.agent._scripted import ScriptedRoot, repl

BUILD = (
    "import json as js\nimport threading\n"
    "index = {w: len(w) for w in context.split()}\nshared = [1, 2]\nalias = shared\n"
    "def helper(x):\n    return x * 2\n"
    "lock = threading.Lock()\ngen = (i for i in range(3))\nprint(len(index))"
)
SCRIPTS = {
    "build": [repl(BUILD), repl("FINAL(len(index))")],
    "second": [repl("total = sum(index.values()) + lookup('k')\nprint(total)"), repl("FINAL(total)")],
    "after": [
        repl(
            "FINAL([len(index), total, alias is shared, js.dumps(alias), history[-1]['content'], "
            "sorted(k for k in globals() if k.startswith('context_')), docs[:5], 'helper' in globals()])"
        )
    ],
}


def lookup(key: str) -> int:
    """A number for a key."""
    return 100


def build(sandbox: str, **options: Any) -> RLMAgent:
    agent = RLMAgent(
        ScriptedRoot(SCRIPTS), sub_model=lambda p: "", sandbox=sandbox, tools={"lookup": lookup}, **options
    )
    agent.add_context("docs", "DOCS " * 10_000)
    assert agent.chat("[build] alpha beta gamma") == "4"
    assert agent.chat("[second] go") == str(7 + 5 + 4 + 5 + 100)
    return agent


def check_report(report: SaveReport, path: pathlib.Path) -> None:
    assert report.path == str(path)
    assert {"index", "shared", "alias", "total", "docs", "context_0", "context_1", "history_0", "js"} <= set(
        report.saved
    )
    assert set(report.skipped) == {"helper", "lock", "gen"} and "threading" in report.saved
    assert "defined in the REPL" in report.skipped["helper"]
    assert "lock" in report.skipped["lock"].lower() and "generator" in report.skipped["gen"]


def reload(path: pathlib.Path, sandbox: str, **options: Any) -> tuple[RLMAgent, ScriptedRoot]:
    root = ScriptedRoot(SCRIPTS)
    agent = RLMAgent.load(path, root, sub_model=lambda p: "", sandbox=sandbox, **options)
    agent.register_tool("lookup", lookup)
    return agent, root


def check_reloaded(agent: RLMAgent, root: ScriptedRoot) -> None:
    assert agent.restored is not None and "index" in agent.restored.saved and "helper" in agent.restored.skipped
    answer = agent.chat("[after] still there?")
    assert answer == ('[4, 121, true, "[1, 2]", "FINAL: 121", ["context_0", "context_1", "context_2"], "DOCS ", false]')
    assert agent.turns == 3
    question = root.requests[0][1]["content"]
    assert "- turn 0, user: [build] alpha beta gamma" in question and "- turn 1, user: [second] go" in question
    assert "`docs`: str, 50,000 characters" in question
    assert "This is turn 3 of a conversation" in question
