"""Root requests are cache-friendly: each one is the previous request plus appended messages, and history
compaction keeps a long run under its budget while moving the cached prefix only now and then."""

from __future__ import annotations

import itertools
import json

from rlm_plugins.core.budget import Limits
from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.chat_policy import COMPACTED_HEADER, ChatPolicy
from rlm_plugins.core.engine import Engine
from rlm_plugins.core.ports import Completion, Usage
from rlm_plugins.repl.factory import sandbox_factory


def flat(messages: list[dict]) -> str:
    """A request as a provider's prompt cache sees it: roles and contents in order."""
    return "".join(f"<{m['role']}>{m['content']}" for m in messages)


def common_prefix(a: str, b: str) -> int:
    size = min(len(a), len(b))
    low, high = 0, size
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def prefix_reuse(requests: list[list[dict]]) -> float:
    """The share of each request that the next one repeats as its prefix, over the whole run."""
    texts = [flat(r) for r in requests]
    reused = sum(common_prefix(a, b) for a, b in itertools.pairwise(texts))
    return reused / sum(len(t) for t in texts[:-1])


def scripted_root(steps: int, output_chars: int = 300):
    requests: list[list[dict]] = []

    def complete(messages: list[dict]) -> Completion:
        turn = len(requests)
        requests.append(json.loads(json.dumps(messages)))
        if turn + 1 >= steps:
            code = "FINAL(total)"
        else:
            code = (
                f"part_{turn} = context[{turn} * 50:{turn + 1} * 50]\n"
                f"total = {turn}\nprint(part_{turn} * {output_chars // 50}, llm_query('look at ' + part_{turn}))"
            )
        return Completion(f"Step {turn + 1}: keep reading.\n```repl\n{code}\n```", Usage(calls=1, input_tokens=1))

    return complete, requests


def run(steps: int, policy_options: dict | None = None, output_chars: int = 300):
    complete, requests = scripted_root(steps, output_chars)
    engine = Engine(
        ChatPolicy(complete, model="root", **(policy_options or {})),
        CallableSubModel(lambda prompt: "seen " + prompt[-8:], name="sub"),
        sandbox_factory("inprocess"),
        limits=Limits(max_iterations=steps + 2, max_llm_calls=500),
    )
    return engine.run("Sum the parts of the data.", "abcdefghij" * 2_000), requests


def test_a_12_step_run_reuses_at_least_98_percent_of_each_request_as_the_next_prefix():
    result, requests = run(12)
    assert result.finish_reason == "final" and result.iterations == 12
    assert len(requests) == 12
    for earlier, later in itertools.pairwise(requests):
        assert later[: len(earlier)] == earlier
    assert prefix_reuse(requests) >= 0.98
    assert "Turn 12 of 14." in requests[-1][-1]["content"]
    assert result.usage["root"].compactions == 0


def test_100_iterations_stay_under_the_token_budget_and_count_each_compaction():
    budget_tokens = 2_000
    result, requests = run(100, {"max_history_tokens": budget_tokens, "keep_recent_steps": 2}, output_chars=600)
    assert result.finish_reason == "final" and len(requests) == 100
    system = len(requests[0][0]["content"])
    history = [len(flat(r)) - system for r in requests]
    assert max(history) <= budget_tokens * 4 + 2_000
    compacted = [i for i, r in enumerate(requests) if COMPACTED_HEADER in r[1]["content"]]
    assert compacted and compacted[0] > 2
    moved = sum(1 for a, b in itertools.pairwise(requests) if b[: len(a)] != a)
    assert result.usage["root"].compactions == moved
    assert 3 <= moved <= 50
    assert prefix_reuse(requests) >= 0.75
    assert "- turn 1: ran `part_0 = context[0 * 50:1 * 50]" in requests[-1][1]["content"] or (
        "earlier turns left out" in requests[-1][1]["content"]
    )
