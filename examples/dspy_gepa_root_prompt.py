"""Optimize an RLM's root prompt with GEPA: the instructions of `generate_action` are what GEPA rewrites.

The task: count how often a word occurs in a long text. A root model that asks a sub-model for the count gets it
wrong; one that counts in code gets it right. GEPA runs the module, reads the metric's feedback, asks the reflection
model for better `generate_action` instructions, and keeps the candidate that scores best.

Offline (the default) every model is scripted, so the run is deterministic and needs no key: the scripted root
counts in code only when its instructions tell it to, and the scripted reflection model proposes exactly that. It
shows the mechanics (which predictor GEPA tunes, how the new text reaches later root prompts, save/load), not model
quality.

With a real model (any LiteLLM model id; its key in the usual environment variable):

    python examples/dspy_gepa_root_prompt.py --model openai/gpt-4o-mini --reflection-model openai/gpt-4o

Run offline:

    python examples/dspy_gepa_root_prompt.py
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
from typing import Any

import dspy
from dspy.clients.engines.dummy_engine import AsyncDummyEngine, DummyEngine
from dspy.lm15 import Message, Response, TextPart, Usage
from dspy.utils.dummies import DummyLM

from rlm_plugins.dspy import RLM

HINT = "Count occurrences in code with context.count(query); never ask llm_query for a count."
WORDS = ["apple", "pear", "plum", "fig", "kiwi"]


def make_examples(n: int, seed: int) -> list[dspy.Example]:
    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2_000, 4_000)))
        word = rng.choice(WORDS)
        examples.append(dspy.Example(context=text, query=word, answer=text.count(word)).with_inputs("context", "query"))
    return examples


def metric(gold: dspy.Example, pred: dspy.Prediction, trace=None, pred_name=None, pred_trace=None):
    """1.0 for the exact count; the feedback tells GEPA's reflection model what went wrong."""
    ok = getattr(pred, "answer", None) == gold.answer
    feedback = "Correct." if ok else f"Wrong: expected {gold.answer}, got {getattr(pred, 'answer', None)!r}."
    return dspy.Prediction(score=float(ok), feedback=feedback)


class _ScriptEngine(DummyEngine):
    def _complete_messages(self, messages: list[dict[str, Any]]) -> Response:
        answer = self.owner.fn(messages)
        text = self.owner._format_answer_fields(answer) if isinstance(answer, dict) else str(answer)
        return Response(
            id=None,
            model=self.owner.model,
            message=Message.assistant([TextPart(text)]),
            finish_reason="stop",
            usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0),
        )


class ScriptedLM(DummyLM):
    """A DummyLM whose reply is `fn(messages)`: a dict of output fields, or raw text."""

    def __init__(self, fn: Any, model: str) -> None:
        super().__init__([])
        self.fn, self.model = fn, model
        self._engine_spec = _ScriptEngine(self)
        self._async_engine_spec = AsyncDummyEngine(self._engine_spec)

    def copy(self, **kwargs: Any) -> ScriptedLM:
        copied = super().copy(**kwargs)
        copied._engine_spec = _ScriptEngine(copied)
        copied._async_engine_spec = AsyncDummyEngine(copied._engine_spec)
        return copied


def scripted_root(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Counts in code when its instructions say so; otherwise trusts the sub-model."""
    if "extract the final outputs" in messages[0]["content"]:
        return {"answer": "0"}
    if HINT in messages[0]["content"]:
        return {"reasoning": "Count in code.", "code": "SUBMIT(answer=context.count(query))"}
    return {"reasoning": "Ask the sub-model.", "code": "SUBMIT(answer=int(llm_query(f'How many {query}?')))"}


def scripted_reflection(messages: list[dict[str, Any]]) -> str:
    """Proposes the hint followed by the current instructions (GEPA's proposer reads a JSON reply)."""
    found = re.search(r"\[\[ ## current_instruction ## \]\]\n(.*?)\n\n\[\[ ## ", messages[-1]["content"], re.S)
    current = found.group(1).strip() if found else ""
    return json.dumps({"new_instruction": current if HINT in current else f"{HINT}\n\n{current}"})


def build_models(args: argparse.Namespace) -> tuple[dspy.BaseLM, dspy.BaseLM, dspy.BaseLM]:
    if args.model:
        options = {"api_base": args.api_base} if args.api_base else {}
        task = dspy.LM(args.model, **options)
        reflection = dspy.LM(args.reflection_model or args.model, temperature=1.0, max_tokens=8000, **options)
        for lm in (task, reflection):
            check_reachable(lm)
        return task, task, reflection
    sub = ScriptedLM(lambda messages: "7", model="scripted-sub")
    return ScriptedLM(scripted_root, "scripted-root"), sub, ScriptedLM(scripted_reflection, "scripted-reflection")


def check_reachable(lm: dspy.LM) -> None:
    """One uncached call without retries, so an unreachable model stops the run at once instead of scoring 0."""
    probe = lm.copy(cache=False, num_retries=0, timeout=30)
    try:
        probe("Reply with OK.")
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        print(
            f"error: model {lm.model} is unreachable ({detail}); check the model id, its key and --api-base",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a LiteLLM model id for the root and sub model (default: scripted)")
    parser.add_argument("--reflection-model", help="the model GEPA reflects with (default: --model)")
    parser.add_argument("--api-base", help="an OpenAI-compatible endpoint for --model and --reflection-model")
    parser.add_argument("--max-metric-calls", type=int, default=24)
    parser.add_argument("--sandbox", default="local", choices=["local", "inprocess", "e2b"])
    args = parser.parse_args(argv)

    root_lm, sub_lm, reflection_lm = build_models(args)
    train, val = make_examples(3, seed=1), make_examples(3, seed=2)
    program = RLM("context, query -> answer: int", max_iters=4, sub_lm=sub_lm, sandbox=args.sandbox)
    evaluate = dspy.Evaluate(devset=val, metric=lambda g, p, trace=None: metric(g, p).score, num_threads=4)

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
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/rlm.json"
            optimized.save(path)
            reloaded = RLM("context, query -> answer: int", max_iters=4, sub_lm=sub_lm, sandbox=args.sandbox)
            reloaded.load(path)
            reloaded_score = evaluate(reloaded).score

    report = {
        "score_before": before,
        "score_after": after,
        "score_reloaded": reloaded_score,
        "instructions_changed": optimized.generate_action.signature.instructions
        != program.generate_action.signature.instructions,
        "new_instructions_head": optimized.generate_action.signature.instructions[:200],
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
