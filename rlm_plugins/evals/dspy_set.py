"""`as_dspy`: a generated task as `dspy.Example`s and a metric, for `dspy.Evaluate` and optimizers such as GEPA."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlm_plugins.evals.base import EvalExample, make_examples
from rlm_plugins.evals.registry import get_task
from rlm_plugins.evals.scoring import as_text

SIGNATURE = "context, question -> answer"
"""The signature the examples fit: `rlm_plugins.dspy.RLM(SIGNATURE)` answers them."""


def as_dspy(task: str, n: int, seed: int = 0, size: int | None = None) -> tuple[list[Any], Callable[..., Any]]:
    """`n` examples of `task` (`TASK` or `TASK:VARIANT`) as `dspy.Example`s with inputs (context, question), and
    a metric returning `dspy.Prediction(score=..., feedback=...)` (a float to `dspy.Evaluate`; GEPA reads the
    feedback).

    Examples:
        ```python
        import dspy
        from rlm_plugins.dspy import RLM
        from rlm_plugins.evals import as_dspy

        devset, metric = as_dspy("aggregate", n=20, seed=1)
        dspy.Evaluate(devset=devset, metric=metric)(RLM("context, question -> answer"))
        ```
    """
    import dspy

    spec, variant = get_task(task)
    generated = make_examples(spec, n, seed, size, variant)
    by_id: dict[str, EvalExample] = {example.id: example for example in generated}
    examples = [
        dspy.Example(context=e.context, question=e.question, answer=e.answer, example_id=e.id).with_inputs(
            "context", "question"
        )
        for e in generated
    ]

    def metric(gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None) -> Any:
        example = by_id[gold.example_id]
        answer = getattr(pred, "answer", None)
        score = spec.score(answer, example) if answer is not None else 0.0
        if score == 1.0:
            feedback = "Correct."
        else:
            feedback = f"Scored {score:.2f}: expected {as_text(example.answer)[:300]}, got {as_text(answer)[:300]}."
        return dspy.Prediction(score=score, feedback=feedback)

    return examples, metric
