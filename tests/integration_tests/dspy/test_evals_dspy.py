"""`as_dspy` feeds dspy.Evaluate and GEPA: the generated examples, the metric with feedback, and the
`examples/dspy_gepa_aggregate.py` example offline."""

from __future__ import annotations

import pathlib

import dspy
import pytest

from rlm_plugins.dspy import RLM
from rlm_plugins.evals import as_dspy, oracle_answer
from rlm_plugins.evals.dspy_set import SIGNATURE
from tests._examples import run_example
from tests.unit_tests.dspy._scripted import ScriptedLM, root

ROOT = pathlib.Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "dspy_gepa_aggregate.py"


def test_examples_have_inputs_and_the_metric_scores_with_feedback():
    examples, metric = as_dspy("aggregate:count", n=3, seed=0, size=1_000)
    assert [sorted(e.inputs().keys()) for e in examples] == [["context", "question"]] * 3
    gold = examples[0]
    right = metric(gold, dspy.Prediction(answer=str(gold.answer)))
    off_by_two = metric(gold, dspy.Prediction(answer=str(gold.answer + 2)))
    assert (float(right), right.feedback) == (1.0, "Correct.")
    assert float(off_by_two) == pytest.approx(0.5625)
    assert f"expected {gold.answer}" in off_by_two.feedback
    assert float(metric(gold, dspy.Prediction())) == 0.0
    again, _ = as_dspy("aggregate:count", n=3, seed=0, size=1_000)
    assert [e.context for e in again] == [e.context for e in examples]


def test_dspy_evaluate_runs_the_rlm_on_generated_niah():
    devset, metric = as_dspy("niah:single", n=2, seed=0, size=1_000)
    code = "import re\nkey = re.search(r'for (\\S+)\\?', question).group(1)\nSUBMIT(answer=str(find(context, key)))"
    find = "def find(text, key):\n    import re\n    return re.search('for ' + key + r' is (\\d+)', text).group(1)\n"
    lm = ScriptedLM(root(("look", "print(question)"), ("solve", find + code)))
    program = RLM(SIGNATURE, max_iters=3, sub_lm=ScriptedLM(lambda m: oracle_answer(m[-1]["content"]).text))
    with dspy.context(lm=lm):
        result = dspy.Evaluate(devset=devset, metric=metric, num_threads=2)(program)
    assert result.score == 100.0


def test_gepa_aggregate_example_runs_offline():
    report = run_example(EXAMPLE.name, "--sandbox", "inprocess", timeout=120)
    assert report["score_before"] < 10.0
    assert report["score_after"] == 100.0
    assert report["instructions_changed"] is True
    assert report["new_instructions_head"].startswith("Label every record with llm_query_batched")
