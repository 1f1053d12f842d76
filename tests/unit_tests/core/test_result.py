"""What `RLMResult` holds: `answer` only for a final answer, the extract step's text in `extracted`."""

from __future__ import annotations

from rlm_plugins.core.budget import Limits
from rlm_plugins.core.result import RLMResult
from tests.unit_tests.core.test_engine import engine_for, repl, script


def test_budget_end_has_no_answer_only_the_extracted_text():
    complete = script(*[repl("print('working')")] * 5, extract="best guess")
    result = engine_for(complete, limits=Limits(max_iterations=2)).run("q", "ctx")
    assert result.finish_reason == "max_iterations"
    assert result.answer is None
    assert result.extracted == "best guess"
    assert result.response == "best guess"


def test_final_answer_keeps_its_value_and_no_extracted_text():
    result = engine_for(script(repl("FINAL({'n': 3})"))).run("q", "ctx")
    assert result.finish_reason == "final"
    assert result.answer == {"n": 3}
    assert result.extracted is None


def test_result_built_by_hand_follows_the_same_rule():
    result = RLMResult("raw text", "raw text", "sandbox_error", [], {}, 0.0)
    assert (result.answer, result.extracted) == (None, "raw text")
