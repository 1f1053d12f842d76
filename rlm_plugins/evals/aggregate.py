"""`aggregate` (OOLONG style): questions over every record of a long list, whose labels only a reader can infer.

Variants: `count` (records of one label; 0.75^|error|), `compare` (how many more of one label than another;
0.75^|error|), `most_common` (the most frequent label; exact).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from rlm_plugins.evals import solvers
from rlm_plugins.evals.base import EvalExample, Task
from rlm_plugins.evals.records import CLASSIFY_HEAD, LABELS, make_records, sub_answer
from rlm_plugins.evals.scoring import count_score, exact_choice

LABEL_GUIDE = (
    "Each record is about one of: billing (payments and charges), shipping (deliveries), praise (compliments), "
    "bug (something broken), feature (requests for new things), account (sign-in and profile); the label is not "
    "written in the record, it has to be inferred from its text."
)


def generate(rng: random.Random, size: int, variant: str) -> EvalExample:
    while True:
        context, rows = make_records(rng, size, users=50)
        counts = Counter(label for _, _, label in rows)
        ranked = counts.most_common()
        if len(ranked) == len(LABELS) and ranked[0][1] > ranked[1][1]:
            break
    first, second = rng.sample(LABELS, 2)
    if variant == "count":
        question, answer = f"How many records are about {first}?", counts[first]
    elif variant == "compare":
        first, second = sorted((first, second), key=lambda label: -counts[label])
        question = f"How many more records are about {first} than about {second}?"
        answer = counts[first] - counts[second]
    else:
        question, answer = "Which label is the most common among the records?", ranked[0][0]
    meta = {"first": first, "second": second, "counts": dict(counts)}
    return EvalExample("aggregate", "", context, f"{LABEL_GUIDE} {question}", answer, meta)


def score(answer: Any, example: EvalExample) -> float:
    if example.meta["variant"] == "most_common":
        return exact_choice(answer, example.answer, LABELS)
    return count_score(answer, example.answer)


def oracle(example: EvalExample) -> list[str]:
    meta = example.meta
    body = (
        f"labelled = classify_records(context, llm_query_batched, {CLASSIFY_HEAD!r})\n"
        f"answer = count_answer(labelled, {meta['variant']!r}, {meta['first']!r}, {meta['second']!r})"
    )
    return solvers.replies([solvers.classify_records, solvers.count_answer], body)


TASK = Task(
    name="aggregate",
    generate=generate,
    score=score,
    oracle=oracle,
    sub_answer=sub_answer,
    variants=("count", "compare", "most_common"),
    profile=(
        "Linear: every record must be read, so the work grows with the size. Direct calls degrade long before the "
        "context window is full; an RLM batches classification sub-calls and counts in code."
    ),
)
