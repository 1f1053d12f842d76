"""`niah`: needles in a haystack of filler sentences (S-NIAH and RULER style).

Variants: `single` (one needle), `multikey` (the asked key among distractor keys), `multivalue` (every value of
one key, scored by F1), `indirect` (the needle describes the person in other words and spells its number out, so
string search for the question's words finds nothing: a sub-model has to read the chunks).
"""

from __future__ import annotations

import random
import re
from typing import Any

from rlm_plugins.evals import solvers
from rlm_plugins.evals._vocab import filler_pool, read_digits, spell_digits, unique_names
from rlm_plugins.evals.base import CHARS_PER_TOKEN, EvalExample, Task
from rlm_plugins.evals.scoring import exact_number, number_set_f1

ROLES = {
    "harbour master": "keeps the boats in order",
    "head librarian": "looks after the old books",
    "night baker": "bakes bread before dawn",
    "bell ringer": "climbs the tower every noon",
    "orchard keeper": "tends the apple trees",
    "ferry captain": "steers the boat across the river",
}
INDIRECT_HEAD = (
    "Does the text below say which code the {role} of {town} chose? The text may describe that person in other "
    "words and spell the code out. Reply with the code in digits only, or NONE."
)
_HEAD = re.compile(r"which code the (.+?) of (\w+) chose\?")


def _haystack(rng: random.Random, size: int, needles: list[str]) -> str:
    pool = filler_pool(rng)
    lines = rng.choices(pool, k=max(size * CHARS_PER_TOKEN // 62, len(needles) + 1))
    for needle in needles:
        lines.insert(rng.randrange(len(lines) + 1), needle)
    return "\n".join(lines) + "\n"


def _magic(key: str, number: int) -> str:
    return f"The special magic number for {key} is {number}."


def generate(rng: random.Random, size: int, variant: str) -> EvalExample:
    names = iter(unique_names(rng, 8, 2))
    keys = [f"{a.lower()}-{b.lower()}" for a, b in zip(names, names, strict=False)]
    numbers = rng.sample(range(1_000_000, 10_000_000), 4)
    key = keys[0]
    if variant == "indirect":
        role, *others = rng.sample(sorted(ROLES), 3)
        town = unique_names(rng, 1)[0]
        needles = [
            f"Whoever {ROLES[who]} in {town} chose the code {spell_digits(n)}."
            for who, n in zip([role, *others], numbers, strict=False)
        ]
        question = f"Which code did the {role} of {town} choose? Answer with the digits."
        meta = {"role": role, "town": town}
        return EvalExample("niah", "", _haystack(rng, size, needles), question, numbers[0], meta)
    if variant == "multivalue":
        needles = [_magic(key, n) for n in numbers[:3]]
        question = f"What are all the special magic numbers for {key}? List every one."
        return EvalExample("niah", "", _haystack(rng, size, needles), question, sorted(numbers[:3]), {"key": key})
    needles = [_magic(key, numbers[0])]
    if variant == "multikey":
        needles += [_magic(other, n) for other, n in zip(keys[1:], numbers[1:], strict=False)]
    question = f"What is the special magic number for {key}?"
    return EvalExample("niah", "", _haystack(rng, size, needles), question, numbers[0], {"key": key})


def score(answer: Any, example: EvalExample) -> float:
    if example.meta["variant"] == "multivalue":
        return number_set_f1(answer, example.answer)
    return exact_number(answer, example.answer)


def oracle(example: EvalExample) -> list[str]:
    if example.meta["variant"] == "indirect":
        head = INDIRECT_HEAD.format(role=example.meta["role"], town=example.meta["town"])
        body = f"found = ask_each_chunk(context, llm_query_batched, {head!r})\nanswer = int(found[0])"
        return solvers.replies([solvers.chunk_text, solvers.ask_each_chunk], body)
    body = f"found = find_magic_numbers(context, {example.meta['key']!r})\n"
    body += "answer = sorted(found)" if example.meta["variant"] == "multivalue" else "answer = found[0]"
    return solvers.replies([solvers.find_magic_numbers], body)


def sub_answer(prompt: str) -> str | None:
    """Reads a chunk as a model would: finds the described person's sentence and turns the words into digits."""
    match = _HEAD.search(prompt)
    if match is None or match.group(1) not in ROLES:
        return None
    role, town = match.groups()
    said = re.search(rf"Whoever {re.escape(ROLES[role])} in {town} chose the code ([a-z ]+)\.", prompt)
    number = read_digits(said.group(1)) if said else None
    return "NONE" if number is None else str(number)


TASK = Task(
    name="niah",
    generate=generate,
    score=score,
    oracle=oracle,
    sub_answer=sub_answer,
    variants=("single", "multikey", "multivalue", "indirect"),
    profile=(
        "Constant work per query: string search solves single/multikey/multivalue at any size; `indirect` needs "
        "one sub-call per chunk. Direct calls fail once the haystack passes the context window."
    ),
)
