"""`pairs` (OOLONG-Pairs style): list every pair of users that satisfies a condition on both users' labels.

Quadratic in the number of users; scored by pair F1.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from rlm_plugins.evals import solvers
from rlm_plugins.evals.aggregate import LABEL_GUIDE
from rlm_plugins.evals.base import CHARS_PER_TOKEN, EvalExample, Task
from rlm_plugins.evals.records import CLASSIFY_HEAD, LABELS, make_records, sub_answer
from rlm_plugins.evals.scoring import pair_f1


def generate(rng: random.Random, size: int, variant: str) -> EvalExample:
    users = min(40, max(6, size * CHARS_PER_TOKEN // 78 // 12))
    context, rows = make_records(rng, size, users)
    both, either = rng.sample(LABELS, 2)
    labels: dict[int, set[str]] = {}
    for _, user, label in rows:
        labels.setdefault(user, set()).add(label)
    eligible = sorted(user for user, seen in labels.items() if both in seen)
    gold = [(a, b) for a, b in itertools.combinations(eligible, 2) if either in labels[a] or either in labels[b]]
    question = (
        f"{LABEL_GUIDE} List every pair of user numbers (a, b) with a < b such that both users have at least one "
        f"record about {both}, and at least one of the two users has a record about {either}."
    )
    return EvalExample("pairs", "", context, question, gold, {"both": both, "either": either, "users": users})


def score(answer: Any, example: EvalExample) -> float:
    return pair_f1(answer, example.answer)


def oracle(example: EvalExample) -> list[str]:
    body = (
        f"labelled = classify_records(context, llm_query_batched, {CLASSIFY_HEAD!r})\n"
        f"answer = qualifying_pairs(labelled, {example.meta['both']!r}, {example.meta['either']!r})"
    )
    return solvers.replies([solvers.classify_records, solvers.qualifying_pairs], body)


TASK = Task(
    name="pairs",
    generate=generate,
    score=score,
    oracle=oracle,
    sub_answer=sub_answer,
    variants=("pairs",),
    profile=(
        "Quadratic: the answer lists pairs, so it grows with the square of the users. Direct calls must hold every "
        "label in mind at once; an RLM labels in sub-calls and pairs in code."
    ),
)
