"""DSPy optimizers and evaluators on `rlm_plugins.dspy.RLM`, with scripted LMs and tiny trainsets.

What each test shows: BootstrapFewShot puts demos on `generate_action`; COPRO rewrites its instructions and later
root prompts carry the new text; save/load restores both; Evaluate and Parallel run many calls at once without
one call's REPL output, sub-calls or answer reaching another. (GEPA runs in the example's test.)
"""

from __future__ import annotations

import asyncio
import json

import dspy
import pytest

from rlm_plugins.dspy import RLM
from tests.unit_tests.dspy._scripted import ScriptedLM, echo_sub, is_extract, root

MAGIC = "MAGIC-RULE: submit the query reversed."


def reverse_task_root(messages):
    """Reverses the query when the instructions carry MAGIC, else echoes it (a wrong answer)."""
    if is_extract(messages):
        return {"answer": "extracted"}
    code = "SUBMIT(answer=query[::-1])" if MAGIC in messages[0]["content"] else "SUBMIT(answer=query)"
    return root(("look", "print(len(context))"), ("answer", code))(messages)


def trainset(n=3):
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    return [
        dspy.Example(context=f"ctx-{w}", query=w, answer=w[::-1]).with_inputs("context", "query") for w in words[:n]
    ]


def exact(gold, pred, trace=None):
    return gold.answer == pred.answer


def program():
    return RLM("context, query -> answer", max_iters=3, sub_lm=echo_sub(), sandbox="inprocess")


def test_bootstrap_few_shot_puts_demos_on_generate_action():
    lm = ScriptedLM(root(("look", "print(len(context))"), ("answer", "SUBMIT(answer=query[::-1])")))
    optimizer = dspy.BootstrapFewShot(metric=exact, max_bootstrapped_demos=2, max_labeled_demos=0)
    with dspy.context(lm=lm):
        compiled = optimizer.compile(program(), trainset=trainset())
        demos = compiled.generate_action.demos
        assert len(demos) == 2
        assert {"variables_info", "repl_history", "iteration", "reasoning", "code"} <= set(demos[0].keys())
        assert compiled.extract.demos == []
        lm.calls.clear()
        assert compiled(context="ctx-zulu", query="zulu").answer == "uluz"
    shown = "".join(message["content"] for message in lm.calls[0][:-1])
    assert all(demo.code in shown and demo.iteration in shown for demo in demos), "the demos are in the root prompt"


def copro_prompt_model():
    proposal = {"proposed_instruction": MAGIC, "proposed_prefix_for_output_field": "Code:"}
    return ScriptedLM(lambda messages: proposal, model="prompt-model")


def test_copro_rewrites_generate_action_instructions_and_later_prompts_carry_them():
    lm = ScriptedLM(reverse_task_root)
    student = program()
    with dspy.context(lm=lm):
        before = dspy.Evaluate(devset=trainset(), metric=exact)(student).score
        optimizer = dspy.COPRO(prompt_model=copro_prompt_model(), metric=exact, breadth=2, depth=1)
        compiled = optimizer.compile(student, trainset=trainset(), eval_kwargs={"num_threads": 1})
        assert MAGIC in compiled.generate_action.signature.instructions
        assert MAGIC not in student.generate_action.signature.instructions
        lm.calls.clear()
        assert compiled(context="ctx-zulu", query="zulu").answer == "uluz"
    assert before == 0.0
    assert MAGIC in lm.calls[0][0]["content"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_save_and_load_restore_the_optimized_state(tmp_path, mode):
    lm = ScriptedLM(reverse_task_root)
    with dspy.context(lm=lm):
        bootstrapped = dspy.BootstrapFewShot(metric=lambda g, p, t=None: True, max_bootstrapped_demos=1).compile(
            program(), trainset=trainset(1)
        )
    bootstrapped.generate_action.signature = bootstrapped.generate_action.signature.with_instructions(MAGIC)
    path = tmp_path / "rlm.json"
    bootstrapped.save(str(path))
    saved = json.loads(path.read_text())
    assert MAGIC in saved["generate_action"]["signature"]["instructions"]
    restored = program()
    restored.load(str(path))
    assert restored.dump_state() == bootstrapped.dump_state()
    with dspy.context(lm=lm):
        if mode == "sync":
            pred = restored(context="c", query="abc")
        else:
            pred = asyncio.run(restored.acall(context="c", query="abc"))
    assert pred.answer == "cba"


def isolated_root(messages):
    """Prints the context, asks the sub-model about it, and submits both: any cross-talk shows in the answer."""
    return root(
        ("look", "print(context)"),
        ("ask", "r = llm_query(context)\nprint(r)"),
        ("answer", "SUBMIT(answer=context + '|' + r)"),
    )(messages)


def many(n):
    return [dspy.Example(context=f"run-{i}", answer=f"run-{i}|sub:run-{i}").with_inputs("context") for i in range(n)]


def own_output(gold, pred, trace=None):
    outputs = [step["output"] for step in pred.trajectory]
    return pred.answer == gold.answer and outputs[:2] == [gold.context, f"sub:{gold.context}"]


def isolated_program():
    return RLM("context -> answer", max_iters=4, sub_lm=echo_sub())


def test_evaluate_with_eight_threads_keeps_runs_apart():
    lm = ScriptedLM(isolated_root)
    with dspy.context(lm=lm):
        result = dspy.Evaluate(devset=many(16), metric=own_output, num_threads=8)(isolated_program())
    assert result.score == 100.0


def test_parallel_keeps_runs_apart():
    lm = ScriptedLM(isolated_root)
    rlm = isolated_program()
    examples = many(12)
    with dspy.context(lm=lm):
        preds = dspy.Parallel(num_threads=8)([(rlm, example.inputs()) for example in examples])
    assert all(own_output(example, pred) for example, pred in zip(examples, preds, strict=True))


def test_concurrent_acalls_keep_runs_apart():
    lm = ScriptedLM(isolated_root)
    rlm = isolated_program()
    examples = many(12)

    async def all_at_once():
        with dspy.context(lm=lm):
            return await asyncio.gather(*(rlm.acall(context=example.context) for example in examples))

    preds = asyncio.run(all_at_once())
    assert all(own_output(example, pred) for example, pred in zip(examples, preds, strict=True))
