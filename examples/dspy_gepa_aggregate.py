"""GEPA optimizes an RLM's root prompt on the generated `aggregate` task (OOLONG style) from `rlm_plugins.evals`.

Each example is a few hundred customer records whose label is only implied by their text; the question asks how
many records have one label. A root model that searches the text for the label's name finds nothing (the names
never appear); one that has a sub-model label the records and counts in code gets it right. `as_dspy` gives the
examples and a metric with feedback, GEPA rewrites `generate_action`'s instructions, and the score rises.

Offline (the default) every model is scripted, so the run is deterministic and needs no key: the root labels
through `llm_query_batched` only when its instructions say so, the sub-model is the task's scripted reader, and
the reflection model proposes that instruction. It shows the mechanics, not model quality.

With a real model (any LiteLLM model id; its key in the usual environment variable):

    python examples/dspy_gepa_aggregate.py --model openai/gpt-4o-mini --reflection-model openai/gpt-4o

Run offline:

    python examples/dspy_gepa_aggregate.py
"""

from __future__ import annotations

import argparse
import inspect
import json
import pathlib
import re
import sys
from typing import Any

import dspy

from rlm_plugins.dspy import RLM
from rlm_plugins.evals import as_dspy, oracle_answer
from rlm_plugins.evals.dspy_set import SIGNATURE
from rlm_plugins.evals.records import CLASSIFY_HEAD
from rlm_plugins.evals.solvers import classify_records, count_answer

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from dspy_gepa_root_prompt import ScriptedLM  # the scripted DSPy LM of the sibling example

HINT = "Label every record with llm_query_batched over chunks of lines, then count the labels in code."
_ITERATION = re.compile(r"\[\[ ## iteration ## \]\]\s*(\d+)/")
_LOOK = "print(len(context))\nprint(context[:300])\nprint(question)"
_LABEL = "label = re.search(r'about (\\w+)\\?', question).group(1)"


def scripted_root(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Labels through sub-calls when its instructions say so; otherwise searches the text for the label's name."""
    if "extract the final outputs" in messages[0]["content"]:
        return {"answer": "0"}
    if HINT not in messages[0]["content"]:
        code = f"import re\n{_LABEL}\nSUBMIT(answer=str(context.count(label)))"
        return {"reasoning": "Count the label's name in the text.", "code": code}
    found = _ITERATION.search(messages[-1]["content"])
    if found is None or found.group(1) == "1":
        return {"reasoning": "Look at the records first.", "code": _LOOK}
    helpers = inspect.getsource(classify_records) + "\n" + inspect.getsource(count_answer)
    code = (
        f"import re\n{helpers}\n{_LABEL}\nlabelled = classify_records(context, llm_query_batched, {CLASSIFY_HEAD!r})"
        "\nanswer = count_answer(labelled, 'count', label, label)\nprint(answer)\nSUBMIT(answer=str(answer))"
    )
    return {"reasoning": "Label the records with sub-calls, then count in code.", "code": code}


def scripted_reflection(messages: list[dict[str, Any]]) -> str:
    """Proposes the hint followed by the current instructions (GEPA's proposer reads a JSON reply)."""
    found = re.search(r"\[\[ ## current_instruction ## \]\]\n(.*?)\n\n\[\[ ## ", messages[-1]["content"], re.S)
    current = found.group(1).strip() if found else ""
    return json.dumps({"new_instruction": current if HINT in current else f"{HINT}\n\n{current}"})


def build_models(args: argparse.Namespace) -> tuple[dspy.BaseLM, dspy.BaseLM, dspy.BaseLM]:
    if args.model:
        task = dspy.LM(args.model)
        return task, task, dspy.LM(args.reflection_model or args.model, temperature=1.0, max_tokens=8000)
    sub = ScriptedLM(lambda messages: oracle_answer(messages[-1]["content"]).text, model="scripted-sub")
    return ScriptedLM(scripted_root, "scripted-root"), sub, ScriptedLM(scripted_reflection, "scripted-reflection")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a LiteLLM model id for the root and sub model (default: scripted)")
    parser.add_argument("--reflection-model", help="the model GEPA reflects with (default: --model)")
    parser.add_argument("--max-metric-calls", type=int, default=24)
    parser.add_argument("--size", type=int, default=2_000, help="records per example, in tokens")
    parser.add_argument("--sandbox", default="local", choices=["local", "inprocess", "e2b"])
    args = parser.parse_args(argv)

    root_lm, sub_lm, reflection_lm = build_models(args)
    examples, metric = as_dspy("aggregate:count", n=6, seed=1, size=args.size)
    train, val = examples[:3], examples[3:]
    program = RLM(SIGNATURE, max_iters=4, sub_lm=sub_lm, sandbox=args.sandbox)
    evaluate = dspy.Evaluate(devset=val, metric=metric, num_threads=3)

    with dspy.context(lm=root_lm):
        before = evaluate(program).score
        optimizer = dspy.GEPA(
            metric=metric,
            reflection_lm=reflection_lm,
            max_metric_calls=args.max_metric_calls,
            reflection_minibatch_size=2,
            num_threads=2,
            seed=0,
        )
        optimized = optimizer.compile(program, trainset=train, valset=val)
        after = evaluate(optimized).score

    report = {
        "score_before": before,
        "score_after": after,
        "instructions_changed": optimized.generate_action.signature.instructions
        != program.generate_action.signature.instructions,
        "new_instructions_head": optimized.generate_action.signature.instructions[:120],
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
