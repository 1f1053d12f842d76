"""`codeqa`: questions about a generated Python code base (call graphs, constant values), answered by reading it.

Variants: `callers` (every function that calls a given one; F1), `value` (a constant defined from constants in
other files; exact), `reach` (how many functions a call from one function can reach; 0.75^|error|).
"""

from __future__ import annotations

import random
from typing import Any

from rlm_plugins.evals import solvers
from rlm_plugins.evals._vocab import NOUNS, VERBS
from rlm_plugins.evals.base import CHARS_PER_TOKEN, EvalExample, Task
from rlm_plugins.evals.scoring import count_score, exact_number, name_set_f1

_FILE_CHARS = 790
_PER_FILE = 4


def generate(rng: random.Random, size: int, variant: str) -> EvalExample:
    n_files = max(size * CHARS_PER_TOKEN // _FILE_CHARS, 3)
    functions = [f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}_{i}" for i in range(n_files * _PER_FILE)]
    calls = {
        f: sorted({functions[j] for j in rng.sample(range(i), min(i, rng.randrange(0, 4)))})
        for i, f in enumerate(functions)
    }
    callers: dict[str, list[str]] = {}
    for f, called in calls.items():
        for callee in called:
            callers.setdefault(callee, []).append(f)
    constants: dict[str, int] = {}
    shallow: list[str] = []
    """Constants a new one may be defined from (literals, and some derived ones: chains stay short)."""
    expressions: dict[str, str] = {}
    files = []
    for k in range(n_files):
        lines = [f'"""Module {k} of the generated service."""', ""]
        for c in range(2):
            name = f"{rng.choice(NOUNS).upper()}_LIMIT_{k}_{c}"
            if shallow and rng.random() < 0.5:
                a, b = rng.choice(shallow), rng.choice(shallow)
                factor = rng.randrange(2, 9)
                expressions[name] = f"{a} * {factor} + {b}"
                constants[name] = constants[a] * factor + constants[b]
            else:
                constants[name] = rng.randrange(10, 1000)
                expressions[name] = str(constants[name])
            if "*" not in expressions[name] or rng.random() < 0.3:
                shallow.append(name)
            lines.append(f"{name} = {expressions[name]}")
        for f in functions[k * _PER_FILE : (k + 1) * _PER_FILE]:
            body = [f"    total = value + {rng.randrange(1, 50)}"]
            body += [f"    total += {callee}(total % 7)" for callee in calls[f]]
            lines += ["", "", f"def {f}(value):", f'    """{f.replace("_", " ")}."""', *body, "    return total"]
        files.append(f"### file: service/module_{k}.py\n" + "\n".join(lines) + "\n")
    meta: dict[str, Any] = {"functions": functions}
    if variant == "callers":
        name = rng.choice(sorted(callers))
        answer: Any = sorted(callers[name])
        question = f"Which functions call `{name}` directly? List their names."
    elif variant == "value":
        derived = [c for c, e in expressions.items() if "*" in e] or list(constants)
        name = rng.choice(derived)
        answer = constants[name]
        question = f"What is the integer value of the constant `{name}`?"
    else:
        name = rng.choice(functions[len(functions) // 2 :])
        answer = solvers.code_answer(calls, {}, "reach", name)
        question = f"How many distinct other functions can `{name}` reach by following calls, directly or not?"
    meta["name"] = name
    context = "\n".join(files)
    return EvalExample("codeqa", "", context, question + " Answer from the code base.", answer, meta)


def score(answer: Any, example: EvalExample) -> float:
    variant = example.meta["variant"]
    if variant == "callers":
        return name_set_f1(answer, example.answer, example.meta["functions"])
    if variant == "value":
        return exact_number(answer, example.answer)
    return count_score(answer, example.answer)


def oracle(example: EvalExample) -> list[str]:
    body = (
        "calls, constants = analyze_code(context)\n"
        f"answer = code_answer(calls, constants, {example.meta['variant']!r}, {example.meta['name']!r})"
    )
    return solvers.replies([solvers.analyze_code, solvers.code_answer], body)


def sub_answer(prompt: str) -> str | None:
    """The oracle reads code with code, so it makes no sub-calls."""
    return None


TASK = Task(
    name="codeqa",
    generate=generate,
    score=score,
    oracle=oracle,
    sub_answer=sub_answer,
    variants=("callers", "value", "reach"),
    profile=(
        "Structure over a whole code base: callers and reach need every file; value needs a chain of "
        "definitions across files. Code analysis in the REPL solves it without sub-calls."
    ),
)
