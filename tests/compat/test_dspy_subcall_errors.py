"""Sub-call failures reach the model's code as they do in `dspy.RLM` (dspy 3.4), checked side by side.

Running out of `max_llm_calls` raises inside the code and the run goes on (the model can still SUBMIT); a batch
slot whose LM failed reads `[ERROR] <message>`; a failed `llm_query`, a programming error of the sub-LM and a
tool's own error are raised in the code. Ours runs on the same DSPy interpreter and on our own sandboxes.
"""

from __future__ import annotations

from typing import Any

import dspy
import pytest

from rlm_plugins.dspy import RLM
from tests.compat._fakes import DictInterpreter
from tests.unit_tests.dspy._scripted import ScriptedLM, is_extract, root

CONFIGS = [
    pytest.param(dspy.RLM, {"interpreter_factory": DictInterpreter}, id="dspy"),
    pytest.param(RLM, {"interpreter_factory": DictInterpreter}, id="ours-interpreter"),
    pytest.param(RLM, {"sandbox": "inprocess"}, id="ours-inprocess"),
    pytest.param(RLM, {"sandbox": "local"}, id="ours-local"),
]

LIMIT = "LLM call limit exceeded"


def flaky(messages: list[dict[str, Any]]) -> str:
    """A sub-LM whose calls on prompts containing "bad" fail with DSPy's transport error."""
    text = messages[-1]["content"]
    if "bad" in text:
        raise dspy.LMTransportError("LM failed")
    return f"ok:{text}"


class BrokenLM:
    """A sub-LM that is not a DSPy LM and fails with a programming error."""

    model = "broken"

    def __call__(self, prompt: str) -> Any:
        raise TypeError("invalid LM implementation")

    async def acall(self, prompt: str) -> Any:
        return self(prompt)


def run(module_class, config, call, steps, sub_lm=None, max_llm_calls=5, tools=None):
    lm = ScriptedLM(root(*steps, ("done", "SUBMIT(answer='done')")))
    if sub_lm is None:
        sub_lm = ScriptedLM(flaky, model="sub")
        sub_lm.num_retries = 0  # dspy retries a failed call with backoff sleeps; what reaches the code is the same
    rlm = module_class(
        "q -> answer", max_iters=len(steps) + 2, max_llm_calls=max_llm_calls, sub_lm=sub_lm, tools=tools, **config
    )
    with dspy.context(lm=lm):
        pred = call(rlm, q="x")
    assert not any(is_extract(messages) for messages in lm.calls), "the run must not fall back to extract"
    return pred, [entry["output"] for entry in pred.trajectory]


CATCH = "except Exception as exc:\n    print('RAISED', exc)"


@pytest.mark.parametrize(("module_class", "config"), CONFIGS)
def test_running_out_of_llm_calls_raises_in_the_code_and_the_run_goes_on(module_class, config, call):
    steps = [
        ("two calls", "print(llm_query('a'), llm_query('b'))"),
        ("one more", f"try:\n    llm_query('c')\n{CATCH}"),
        ("batch", f"try:\n    llm_query_batched(['d', 'e'])\n{CATCH}"),
    ]
    pred, outputs = run(module_class, config, call, steps, max_llm_calls=2)
    assert pred.answer == "done"
    assert "ok:a ok:b" in outputs[0]
    assert "RAISED" in outputs[1] and f"{LIMIT}: 2 + 1 > 2" in outputs[1]
    assert f"{LIMIT}: 2 + 2 > 2" in outputs[2]
    assert "Use Python code for aggregation" in outputs[2]


@pytest.mark.parametrize(("module_class", "config"), CONFIGS)
def test_a_batch_larger_than_the_budget_is_refused_whole(module_class, config, call):
    steps = [("too many", f"try:\n    llm_query_batched(['a', 'b', 'c'])\n{CATCH}"), ("fits", "print(llm_query('d'))")]
    _pred, outputs = run(module_class, config, call, steps, max_llm_calls=2)
    assert f"{LIMIT}: 0 + 3 > 2" in outputs[0]
    assert "ok:d" in outputs[1]


@pytest.mark.parametrize(("module_class", "config"), CONFIGS)
def test_a_failed_batch_slot_reads_like_dspy(module_class, config, call):
    _pred, outputs = run(module_class, config, call, [("batch", "print(llm_query_batched(['a', 'bad']))")])
    assert outputs[0].strip() == "['ok:a', '[ERROR] LM failed']"


@pytest.mark.parametrize(("module_class", "config"), CONFIGS)
def test_a_failed_llm_query_is_raised_in_the_code(module_class, config, call):
    steps = [("one", f"try:\n    print('VALUE', llm_query('bad'))\n{CATCH}")]
    _pred, outputs = run(module_class, config, call, steps)
    assert "RAISED" in outputs[0] and "LM failed" in outputs[0] and "VALUE" not in outputs[0]


@pytest.mark.parametrize(("module_class", "config"), CONFIGS)
def test_a_programming_error_of_the_sub_lm_is_raised_not_a_slot_string(module_class, config, call):
    steps = [
        ("batch", f"try:\n    print('VALUE', llm_query_batched(['a', 'b']))\n{CATCH}"),
        ("single", f"try:\n    print('VALUE', llm_query('a'))\n{CATCH}"),
    ]
    pred, outputs = run(module_class, config, call, steps, sub_lm=BrokenLM())
    for output in outputs[:2]:
        assert "RAISED" in output and "invalid LM implementation" in output and "VALUE" not in output
    assert pred.answer == "done"


@pytest.mark.parametrize(("module_class", "config"), CONFIGS)
def test_a_tool_error_is_raised_in_the_code(module_class, config, call):
    def lookup(key: str) -> str:
        """Look a key up."""
        raise TypeError(f"lookup() got a bad key: {key!r}")

    steps = [("tool", f"try:\n    print('VALUE', lookup(key='k'))\n{CATCH}")]
    _pred, outputs = run(module_class, config, call, steps, tools=[lookup])
    assert "RAISED" in outputs[0] and "bad key: 'k'" in outputs[0] and "VALUE" not in outputs[0]
