"""The standalone RLM's bill over HTTP: memoised sub-calls, cached input tokens and the per-model cost report."""

from __future__ import annotations

import pytest

from rlm_plugins import RLM
from rlm_plugins.core.cost import CostReport

ROOT = "openai/gpt-4o-mini"
SUB = "openai/scripted-sub"
CODE = "answers = llm_query_batched(['same'] * 5 + ['other'])\nprint(answers)"


def scripted(body):
    messages = body["messages"]
    if messages[0]["role"] != "system":
        return "echo " + messages[-1]["content"]
    turn = sum(1 for m in messages if m["role"] == "assistant")
    reply = f"```repl\n{CODE}\n```" if turn == 0 else "```repl\nFINAL(answers[0])\n```"
    return {"content": reply, "usage": {"prompt_tokens_details": {"cached_tokens": 64 * turn}}}


def rlm(server, **kwargs) -> RLM:
    return RLM(
        model=ROOT,
        sub_model=SUB,
        api_base=server.base_url,
        api_key="sk-test",
        model_kwargs={"max_retries": 0},
        sandbox="inprocess",
        **kwargs,
    )


def sub_requests(server) -> list[str]:
    return [r["messages"][-1]["content"] for r in server.requests if r["messages"][0]["role"] != "system"]


def check_report(result, server) -> None:
    assert result.response == "echo same"
    assert sorted(sub_requests(server)) == ["other", "same"]
    report = result.cost_report
    assert isinstance(report, CostReport)
    root, sub = (next(row for row in report.models if row.model == name) for name in (ROOT, SUB))
    assert (root.calls, root.cached_input_tokens) == (2, 64)
    assert root.cost is not None and root.cost > 0
    assert (sub.calls, sub.memo_hits, sub.cost) == (2, 4, None)
    assert report.unpriced == [SUB]
    assert report.total_cost == pytest.approx(root.cost)
    assert report.as_dict()["total"]["memo_hits"] == 4
    assert "total | 4 |" in str(report)


def test_duplicate_sub_prompts_are_answered_once_and_the_report_prices_the_tree(scripted_openai):
    server = scripted_openai(scripted)
    check_report(rlm(server).completion("data", root_prompt="Ask twice."), server)


async def test_duplicate_sub_prompts_are_answered_once_and_the_report_prices_the_tree_async(scripted_openai):
    server = scripted_openai(scripted)
    check_report(await rlm(server).acompletion("data", root_prompt="Ask twice."), server)


def test_memo_off_calls_the_model_for_every_prompt(scripted_openai):
    server = scripted_openai(scripted)
    result = rlm(server, memo=False).completion("data", root_prompt="Ask twice.")
    assert len(sub_requests(server)) == 6
    assert result.usage[SUB].memo_hits == 0 and result.usage[SUB].calls == 6


def test_each_run_has_its_own_memo_unless_a_cache_directory_is_given(scripted_openai, tmp_path):
    server = scripted_openai(scripted)
    engine = rlm(server)
    engine.completion("data", root_prompt="Ask twice.")
    engine.completion("data", root_prompt="Ask twice.")
    assert len(sub_requests(server)) == 4
    cached = rlm(server, cache=tmp_path)
    cached.completion("data", root_prompt="Ask twice.")
    result = cached.completion("data", root_prompt="Ask twice.")
    assert len(sub_requests(server)) == 6
    assert result.usage[SUB].memo_hits == 6 and result.usage[SUB].calls == 0
