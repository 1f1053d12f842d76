"""Exact scorers, as the RLM paper scores its tasks: 0.75^|error| for counts, F1 for sets and pairs, exact
match otherwise. Answers may be any value a run returns (a number, a list, text); each scorer reads what it
needs from the value or its text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

_NUMBER = re.compile(r"-?\d[\d,]*")
_PAIR = re.compile(r"\(?\[?\s*(\d+)\s*,\s*(\d+)\s*\)?\]?")


def as_text(answer: Any) -> str:
    """The answer as text (JSON for containers)."""
    if answer is None:
        return ""
    if isinstance(answer, str):
        return answer
    try:
        return json.dumps(answer)
    except (TypeError, ValueError):
        return str(answer)


def numbers(answer: Any) -> list[int]:
    """Every integer written in the answer, in order (thousands separators allowed)."""
    if isinstance(answer, bool):
        return []
    if isinstance(answer, int):
        return [answer]
    if isinstance(answer, float) and answer.is_integer():
        return [int(answer)]
    return [int(match.replace(",", "")) for match in _NUMBER.findall(as_text(answer)) if match.strip(",-")]


def count_score(answer: Any, gold: int) -> float:
    """0.75 ** |answer - gold| for the last number of the answer; 0 when it holds no number."""
    found = numbers(answer)
    return 0.75 ** abs(found[-1] - gold) if found else 0.0


def exact_number(answer: Any, gold: int) -> float:
    """1 when the answer names exactly one distinct number and it is `gold`."""
    return float(set(numbers(answer)) == {gold})


def exact_choice(answer: Any, gold: str, candidates: Iterable[str]) -> float:
    """1 when the answer names `gold` and no other candidate (case and punctuation ignored)."""
    text = _norm(as_text(answer))
    named = {c for c in candidates if re.search(rf"(?<!\w){re.escape(_norm(c))}(?!\w)", text)}
    return float(named == {gold})


def set_f1(predicted: set[Any], gold: set[Any]) -> float:
    """F1 of two sets; two empty sets score 1."""
    if not predicted and not gold:
        return 1.0
    hits = len(predicted & gold)
    if not hits:
        return 0.0
    precision, recall = hits / len(predicted), hits / len(gold)
    return 2 * precision * recall / (precision + recall)


def number_set_f1(answer: Any, gold: Iterable[int]) -> float:
    return set_f1(set(numbers(answer)), set(gold))


def name_set_f1(answer: Any, gold: Iterable[str], candidates: Iterable[str]) -> float:
    """F1 of the candidate names the answer mentions against the gold names."""
    text = as_text(answer)
    named = {c for c in candidates if re.search(rf"(?<![\w.]){re.escape(c)}(?![\w])", text)}
    return set_f1(named, set(gold))


def pairs_of(answer: Any) -> set[tuple[int, int]]:
    """The (a, b) pairs an answer lists, each ordered so a < b."""
    if isinstance(answer, (list, tuple, set)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in answer):
        raw = [(p[0], p[1]) for p in answer]
    else:
        raw = _PAIR.findall(as_text(answer))
    out = set()
    for a, b in raw:
        try:
            a, b = int(a), int(b)
        except (TypeError, ValueError):
            continue
        if a != b:
            out.add((min(a, b), max(a, b)))
    return out


def pair_f1(answer: Any, gold: Iterable[tuple[int, int]]) -> float:
    return set_f1(pairs_of(answer), {(min(a, b), max(a, b)) for a, b in gold})


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s-]", " ", text.lower()).split())
