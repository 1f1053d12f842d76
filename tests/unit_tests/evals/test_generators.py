"""Generators are pure functions of (seed, size): same arguments, same bytes; sizes come out as asked."""

from __future__ import annotations

import hashlib
import json

import pytest

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.evals import TASKS, get_task, make_examples

CASES = [(name, variant) for name, task in TASKS.items() for variant in task.variants]


def digest(examples):
    data = [(e.id, e.context, e.question, json.dumps(e.answer)) for e in examples]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


@pytest.mark.parametrize(("name", "variant"), CASES)
def test_same_seed_same_bytes_and_other_seeds_differ(name, variant):
    task = TASKS[name]
    first = make_examples(task, 2, seed=3, size=2_000, variant=variant)
    assert digest(first) == digest(make_examples(task, 2, seed=3, size=2_000, variant=variant))
    assert digest(first) != digest(make_examples(task, 2, seed=4, size=2_000, variant=variant))
    assert first[0].context != first[1].context


@pytest.mark.parametrize("name", sorted(TASKS))
@pytest.mark.parametrize("size", [2_000, 50_000])
def test_context_length_follows_the_size_in_tokens(name, size):
    for example in make_examples(TASKS[name], len(TASKS[name].variants), seed=0, size=size):
        assert 0.75 * size <= example.tokens <= 1.3 * size, (example.id, example.tokens)


def test_a_generator_run_in_another_process_gives_the_same_bytes():
    import subprocess
    import sys

    code = (
        "import hashlib, json; from rlm_plugins.evals import TASKS, make_examples; "
        "print(hashlib.sha256(make_examples(TASKS['multihop'], 1, seed=9, size=3000)[0].context.encode()).hexdigest())"
    )
    env = {"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path)}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    mine = hashlib.sha256(make_examples(TASKS["multihop"], 1, seed=9, size=3000)[0].context.encode()).hexdigest()
    assert other.stdout.strip() == mine


def test_examples_cycle_through_the_variants_and_a_spec_picks_one():
    examples = make_examples(TASKS["niah"], 4, seed=0, size=1_000)
    assert [e.meta["variant"] for e in examples] == ["single", "multikey", "multivalue", "indirect"]
    task, variant = get_task("niah:indirect")
    assert (task.name, variant) == ("niah", "indirect")


def test_the_indirect_needle_does_not_contain_the_question_words():
    example = make_examples(TASKS["niah"], 1, seed=0, size=2_000, variant="indirect")[0]
    assert example.meta["role"] not in example.context
    assert str(example.answer) not in example.context


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: get_task("nope"), "unknown task"),
        (lambda: get_task("niah:nope"), "no variant"),
        (lambda: make_examples(TASKS["niah"], 1, size=10), "too small"),
        (lambda: make_examples(TASKS["niah"], 0), "at least 1"),
    ],
)
def test_bad_arguments_say_what_to_pass(call, message):
    with pytest.raises(ConfigurationError, match=message):
        call()
