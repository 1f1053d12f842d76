"""Host-side conversions of values that came out of a sandbox: they never raise, and their text is always valid.

Sandbox code can hand the host anything: lone surrogates (`'\\udcff'`), ints past Python's str-conversion limit
(`10**5000`), lists that contain themselves, data nested thousands of levels deep. Every host-side conversion goes
through these functions, so none of those can break a log, an event observer or the final response.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 200
"""Containers nested deeper than this are shown as a placeholder."""


def clean_text(text: str) -> str:
    """`text` with lone surrogates replaced by '?', as stdout is: it then always encodes as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def clean(value: Any, depth: int = 0) -> Any:
    """`value` with every str in it (keys too) made valid text; other values are returned as they are."""
    if isinstance(value, str):
        return clean_text(value)
    if depth > MAX_DEPTH:
        return value
    if type(value) is list:
        return [clean(v, depth + 1) for v in value]
    if type(value) is tuple:
        return tuple(clean(v, depth + 1) for v in value)
    if type(value) is dict:
        return {clean(k, depth + 1): clean(v, depth + 1) for k, v in value.items()}
    return value


def safe_str(value: Any) -> str:
    """`str(value)` that never raises: a big int becomes a description, a failing `__str__` its error."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 10_000:
        return describe_int(value)
    try:
        return clean_text(str(value))
    except Exception as exc:
        return f"<{type(value).__name__} that cannot be shown: {type(exc).__name__}: {exc}>"


def describe_int(value: int) -> str:
    """A readable stand-in for an int too long to convert to decimal text."""
    digits = int(value.bit_length() * math.log10(2)) + 1
    return f"<int with about {digits:,} digits>"


def plain(value: Any, depth: int = 0, seen: frozenset[int] = frozenset()) -> Any:
    """`value` as data `json.dumps` always accepts: valid text, no cycles, bounded depth, no unconvertible ints."""
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return describe_int(value) if value.bit_length() > 10_000 else value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, (list, tuple, dict)):
        if id(value) in seen:
            return "<cycle>"
        if depth >= MAX_DEPTH:
            return f"<{type(value).__name__} nested deeper than {MAX_DEPTH} levels>"
        inner = seen | {id(value)}
        if isinstance(value, dict):
            return {safe_str(k): plain(v, depth + 1, inner) for k, v in value.items()}
        return [plain(v, depth + 1, inner) for v in value]
    return safe_str(value)


def as_json_text(value: Any) -> str:
    """`value` as JSON text (non-ASCII kept), whatever it holds."""
    try:
        return clean_text(json.dumps(value, ensure_ascii=False))
    except (TypeError, ValueError, RecursionError):
        return clean_text(json.dumps(plain(value), ensure_ascii=False))
