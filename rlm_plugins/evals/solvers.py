"""The oracle's code: what an ideal root model writes in the REPL, as real functions.

Each function is self-contained (stdlib imports inside, no module globals), because the oracle ships it into the
sandbox as its own source with `inspect.getsource`, the way `repl/driver.py` is shipped. REPL built-ins
(`llm_query`, `llm_query_batched`) are passed in as arguments.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def chunk_text(context, max_chars=40_000):
    """Split `context` at line ends into pieces of at most `max_chars` characters."""
    chunks, current, size = [], [], 0
    for line in context.splitlines(keepends=True):
        if current and size + len(line) > max_chars:
            chunks.append("".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        chunks.append("".join(current))
    return chunks


def find_magic_numbers(context, key):
    """Every number a `special magic number for KEY is N` sentence gives (plain string search)."""
    import re

    return [int(n) for n in re.findall(r"special magic number for " + re.escape(key) + r" is (\d+)", context)]


def ask_each_chunk(context, llm_query_batched, head, max_chars=40_000, max_calls=80):
    """Ask `head` about every chunk of the context at once (chunks grow to keep within `max_calls` sub-calls);
    the answers that are not NONE."""
    max_chars = max(max_chars, -(-len(context) // max_calls) + 1_000)
    prompts = [head + "\n\n" + chunk for chunk in chunk_text(context, max_chars)]
    answers = [answer.strip() for answer in llm_query_batched(prompts)]
    return [answer for answer in answers if answer and answer.upper() != "NONE"]


def classify_records(context, llm_query_batched, head, per_prompt=200, max_calls=80):
    """Label every record through sub-calls (batches grow to keep within `max_calls`); {record id: (user, label)}."""
    import re

    records = re.findall(r"^Record (\d+) \| user (\d+) \|", context, re.M)
    users = dict(records)
    lines = [line for line in context.splitlines() if line.startswith("Record ")]
    per_prompt = max(per_prompt, -(-len(lines) // max_calls))
    prompts = [head + "\n\n" + "\n".join(lines[i : i + per_prompt]) for i in range(0, len(lines), per_prompt)]
    labelled = {}
    for answer in llm_query_batched(prompts):
        for line in answer.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in users:
                labelled[parts[0]] = (int(users[parts[0]]), parts[1])
    return labelled


def count_answer(labelled, kind, first, second):
    """Answer an aggregate question from the labels: a count, the most common label, or a difference."""
    from collections import Counter

    counts = Counter(label for _, label in labelled.values())
    if kind == "count":
        return counts[first]
    if kind == "compare":
        return counts[first] - counts[second]
    return counts.most_common(1)[0][0]


def qualifying_pairs(labelled, both, either):
    """Pairs of users (a < b) who both have a `both` record, where at least one has an `either` record."""
    import itertools

    labels = {}
    for user, label in labelled.values():
        labels.setdefault(user, set()).add(label)
    eligible = sorted(user for user, seen in labels.items() if both in seen)
    return [(a, b) for a, b in itertools.combinations(eligible, 2) if either in labels[a] or either in labels[b]]


def follow_chain(context, llm_query, start, questions):
    """Answer each question about the previous answer, reading only the documents that mention it."""
    entity = start
    for question in questions:
        documents = [doc for doc in context.split("\n### ") if entity in doc]
        answer = llm_query(
            "Answer from the documents below. Question: " + question.format(entity) + "\n"
            "Reply with the name only, or NONE.\n\n" + "\n### ".join(documents)
        ).strip()
        if not answer or answer == "NONE":
            return None
        entity = answer
    return entity


def analyze_code(context):
    """Parse every file of a code base: {function: calls}, and the constants' values."""
    import ast

    calls, constants, pending = {}, {}, {}
    for part in context.split("### file: ")[1:]:
        source = part.split("\n", 1)[1]
        tree = ast.parse(source)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                calls[node.name] = sorted(
                    {c.func.id for c in ast.walk(node) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
                )
            elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                pending[node.targets[0].id] = node.value
    while pending:
        for name, value in list(pending.items()):
            names = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
            if names <= set(constants):
                code = compile(ast.Expression(value), "<const>", "eval")
                constants[name] = eval(code, {}, dict(constants))
                del pending[name]
    return calls, constants


def code_answer(calls, constants, kind, name):
    """Answer a code question: the callers of a function, a constant's value, or how many functions it reaches."""
    if kind == "callers":
        return sorted(f for f, called in calls.items() if name in called)
    if kind == "value":
        return constants[name]
    seen, todo = set(), [name]
    while todo:
        for callee in calls.get(todo.pop(), []):
            if callee in calls and callee not in seen and callee != name:
                seen.add(callee)
                todo.append(callee)
    return len(seen)


LOOK = "```repl\nprint(type(context), len(context))\nprint(context[:400])\n```"
FINISH = "```repl\nFINAL(answer)\n```"


def replies(functions: list[Callable[..., Any]], body: str) -> list[str]:
    """The oracle's turns: look at the data, define `functions` and run `body` (which sets `answer`), answer."""
    sources = "\n\n".join(inspect.getsource(fn) for fn in functions)
    return [LOOK, f"```repl\n{sources}\n{body}\nprint(repr(answer)[:2000])\n```", FINISH]
