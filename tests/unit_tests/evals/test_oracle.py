"""The oracle solution scores 1.0 through the real engine and the real local sandbox, for every task and variant:
the generators, the oracles' sub-call prompts, the scripted sub-model and the scorers agree."""

from __future__ import annotations

import asyncio

import pytest

from rlm_plugins.core.engine import Engine
from rlm_plugins.evals import TASKS, Settings, get_task, make_examples, oracle_policy, oracle_sub, run_method
from rlm_plugins.repl.factory import sandbox_factory

CASES = [(name, variant) for name, task in TASKS.items() for variant in task.variants]


@pytest.mark.parametrize(("name", "variant"), CASES)
def test_oracle_scores_one_in_the_local_sandbox(name, variant):
    task = TASKS[name]
    for example in make_examples(task, 2, seed=1, size=3_000, variant=variant):
        engine = Engine(oracle_policy(example), oracle_sub(), sandbox_factory("local"))
        result = engine.run(example.question, example.context)
        assert result.finish_reason == "final", result.trajectory
        assert task.score(result.answer, example) == 1.0, (result.answer, example.answer)
        assert result.iterations == 3


@pytest.mark.parametrize("name", ["aggregate", "pairs", "multihop"])
def test_oracle_async_run_on_a_larger_context(name):
    task = TASKS[name]
    example = make_examples(task, 1, seed=2, size=40_000)[0]
    outcome = asyncio.run(run_method("rlm", example, Settings(model="oracle", sandbox="local")))
    assert (outcome.finish_reason, task.score(outcome.answer, example)) == ("final", 1.0)
    assert outcome.usage.calls > 3


def test_oracle_sub_model_reads_only_what_the_prompt_holds():
    example = make_examples(TASKS["aggregate"], 1, seed=0, size=2_000, variant="count")[0]
    engine = Engine(oracle_policy(example), oracle_sub(), sandbox_factory("inprocess"))
    truncated = "\n".join(example.context.splitlines()[:10])
    result = engine.run(example.question, truncated)
    assert result.answer == sum(1 for line in truncated.splitlines() if _label(line) == example.meta["first"])


def _label(line):
    from rlm_plugins.evals.records import label_of

    return label_of(line)


def test_without_sub_calls_only_the_code_only_tasks_are_solved():
    settings = Settings(model="oracle", sandbox="inprocess")
    scores = {}
    for spec in ("niah:single", "codeqa:value", "aggregate:count", "niah:indirect"):
        name, _, variant = spec.partition(":")
        example = make_examples(TASKS[name], 1, seed=0, size=2_000, variant=variant)[0]
        outcome = asyncio.run(run_method("rlm-depth0", example, settings))
        scores[spec] = TASKS[name].score(outcome.answer, example)
    assert scores["niah:single"] == scores["codeqa:value"] == 1.0
    assert scores["aggregate:count"] < 0.1 and scores["niah:indirect"] == 0.0


@pytest.mark.parametrize("spec", ["niah:indirect", "aggregate:count"])
def test_oracle_keeps_within_the_sub_call_budget_at_a_million_tokens(spec):
    task, variant = get_task(spec)
    example = make_examples(task, 1, seed=0, size=1_000_000, variant=variant)[0]
    engine = Engine(oracle_policy(example), oracle_sub(), sandbox_factory("local"))
    result = engine.run(example.question, example.context)
    assert (result.finish_reason, task.score(result.answer, example)) == ("final", 1.0)
    assert result.total_usage.calls <= 3 + 81
