"""Which final answers count as typed in (literals) and which as computed, and when each check applies."""

from __future__ import annotations

import pytest

from rlm_plugins.core.final_checks import final_problem
from rlm_plugins.core.ports import CodeRun, ContextInfo, RunState, Step
from rlm_plugins.repl.base import ExecResult

LONG = ContextInfo("context", "str", 10_000, None, "x" * 500)


def state(*history, iteration=1, max_iterations=10, variables=(LONG,)):
    return RunState("q", list(variables), [], list(history), iteration, max_iterations)


def ran(code, stdout=""):
    return CodeRun(code, ExecResult(stdout=stdout))


@pytest.mark.parametrize(
    ("code", "refused"),
    [
        ("FINAL('123456')", True),
        ("FINAL(f'the code is {123}')", True),
        ("FINAL({'a': [1, 2], 'b': -3})", True),
        ("SUBMIT(answer='x', ok=True)", True),
        ("FINAL(f'the code is {code}')", False),
        ("FINAL(len(context))", False),
        ("FINAL_VAR('answer')", False),
        ("SUBMIT(answer=answer, ok=True)", False),
        ("x = 1\nFINAL(x)", False),
        ("FINAL(", False),
    ],
)
def test_literal_or_computed_on_the_first_turn(code, refused):
    step = Step(1, "", "", runs=[ran(code)])
    assert (final_problem(state(step), step, code) is not None) is refused


def test_prose_final_counts_as_typed_in():
    step = Step(1, "", "FINAL(3)")
    assert final_problem(state(step), step, None) is not None
    seen = Step(1, "", "", runs=[ran("print(1)", "1")])
    later = Step(2, "", "FINAL(3)")
    assert final_problem(state(seen, later, iteration=2), later, None) is None


def test_checks_off_on_the_last_turn_with_full_previews_or_when_disabled():
    step = Step(1, "", "", runs=[ran("FINAL('x')")])
    assert final_problem(state(step, iteration=10), step, "FINAL('x')") is None
    small = ContextInfo("context", "str", 4, None, "abcd")
    assert final_problem(state(step, variables=[small]), step, "FINAL('x')") is None
    assert final_problem(state(step, variables=[]), step, "FINAL('x')") is None
    assert final_problem(state(step), step, "FINAL('x')", refuse_premature=False) is None


def test_blind_literal_needs_unread_output_earlier_in_the_same_reply():
    seen = Step(1, "", "", runs=[ran("print(len(context))", "10000")])
    quiet = Step(2, "", "", runs=[ran("x = 1"), ran("FINAL('7')")])
    assert final_problem(state(seen, quiet, iteration=2), quiet, "FINAL('7')") is None
    loud = Step(2, "", "", runs=[ran("print(context[:9])", "xxxxxxxxx"), ran("FINAL('7')")])
    problem = final_problem(state(seen, loud, iteration=2), loud, "FINAL('7')")
    assert problem is not None and "'7'" in problem
    computed = Step(2, "", "", runs=[ran("print(1)", "1"), ran("FINAL(x)")])
    assert final_problem(state(seen, computed, iteration=2), computed, "FINAL(x)") is None
