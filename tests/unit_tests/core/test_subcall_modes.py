"""The engine's two sub-call switches: `on_llm_budget` (end the run, or raise in the code) and `sub_failure`
(a failed call's text, or None to raise it in the code). Each test runs sync and async."""

from __future__ import annotations

import pytest

from rlm_plugins.core.budget import Limits
from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.errors import ConfigurationError
from tests.unit_tests.core.test_budget_tree import drive, engine_for, repl, turn_of

__all__ = ["drive"]

CATCH = "except Exception as exc:\n    print('RAISED', type(exc).__name__, exc)"


def scripted(*steps):
    """A root model answering turn i with steps[i], then FINAL('done')."""

    def complete(messages):
        turn = turn_of(messages)
        return repl(steps[turn]) if turn < len(steps) else repl("FINAL('done')")

    return complete


def outputs(result):
    return [entry["output"][0] if entry["output"] else "" for entry in result.trajectory]


def test_by_default_running_out_of_calls_ends_the_run(drive):
    engine = engine_for(scripted("print(llm_query('a'))", "print(llm_query('b'))"), limits=Limits(max_llm_calls=1))
    result, _ = drive(engine, "q", "c")
    assert result.finish_reason == "max_llm_calls"
    assert "budget exhausted" in outputs(result)[1]


def test_raise_in_code_lets_the_model_answer_after_the_budget_ran_out(drive):
    steps = (
        "print(llm_query('a'))",
        f"try:\n    llm_query('b')\n{CATCH}",
        f"try:\n    llm_query_batched(['c'])\n{CATCH}",
    )
    engine = engine_for(scripted(*steps), limits=Limits(max_llm_calls=1), on_llm_budget="raise_in_code")
    result, _ = drive(engine, "q", "c")
    assert result.finish_reason == "final" and result.answer == "done"
    shown = outputs(result)
    assert "SubCallBudgetError: LLM call limit exceeded: 1 + 1 > 1" in shown[1]
    assert "LLM call limit exceeded: 1 + 1 > 1" in shown[2]
    assert sum(usage.calls for name, usage in result.usage.items() if name == "sub") == 1


def test_sub_failure_chooses_between_a_slot_string_and_raising(drive):
    def sub(prompt):
        if "bad" in prompt:
            raise ValueError(f"cannot answer {prompt}")
        return f"ok:{prompt}"

    def failure(error, batched):
        return f"<{type(error).__name__} in a batch>" if batched else None

    steps = (f"try:\n    print(llm_query_batched(['a', 'bad1']))\n    llm_query('bad2')\n{CATCH}",)
    engine = engine_for(scripted(*steps), sub=CallableSubModel(sub, name="sub"), sub_failure=failure)
    result, _ = drive(engine, "q", "c")
    shown = outputs(result)[0]
    assert "['ok:a', '<ValueError in a batch>']" in shown
    assert "RAISED" in shown and "cannot answer bad2" in shown


def test_a_batch_slot_raising_raises_the_batch_after_every_slot_ended(drive):
    seen = []

    def sub(prompt):
        seen.append(prompt)
        if prompt == "bad":
            raise TypeError("not a prompt I take")
        return prompt

    steps = (f"try:\n    print('VALUE', llm_query_batched(['bad', 'b', 'c', 'd']))\n{CATCH}",)
    engine = engine_for(scripted(*steps), sub=CallableSubModel(sub, name="sub"), sub_failure=lambda e, b: None)
    result, _ = drive(engine, "q", "c")
    shown = outputs(result)[0]
    assert "RAISED" in shown and "not a prompt I take" in shown and "VALUE" not in shown
    assert sorted(seen) == ["b", "bad", "c", "d"]


def test_an_unknown_on_llm_budget_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match=r"on_llm_budget='raise'.*raise_in_code"):
        engine_for(scripted(), on_llm_budget="raise")
