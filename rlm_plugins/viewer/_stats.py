"""Token, cost and time totals over a log's entries, tolerant of missing fields (official logs have fewer)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def usage_of(value: Any) -> dict[str, Any] | None:
    """A usage dict ({calls, input_tokens, output_tokens, cost}) from our `Usage.as_dict()` shape, else None."""
    if not isinstance(value, dict):
        return None
    cost = value.get("cost")
    return {
        "calls": _int(value.get("calls")),
        "input_tokens": _int(value.get("input_tokens")),
        "output_tokens": _int(value.get("output_tokens")),
        "cost": float(cost) if isinstance(cost, (int, float)) else None,
    }


def sum_usage(items: Iterable[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The sum of usage dicts; None when none was known. Cost stays None until one item reports it."""
    total: dict[str, Any] | None = None
    for item in items:
        if item is None:
            continue
        if total is None:
            total = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost": None}
        for key in ("calls", "input_tokens", "output_tokens"):
            total[key] += item.get(key) or 0
        if item.get("cost") is not None:
            total["cost"] = (total["cost"] or 0.0) + item["cost"]
    return total


def call_stats(calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts, durations, usage and models over every sub-call of one code block."""
    times = [t for t in (call.get("execution_time") for call in calls) if isinstance(t, (int, float))]
    kinds = [call.get("kind") or ("rlm" if call.get("metadata") else "llm") for call in calls]
    errors = sum(1 for call in calls if call.get("error") or str(call.get("response", "")).startswith("[Error]"))
    models: dict[str, int] = {}
    for call in calls:
        name = str(call.get("root_model") or "?")
        models[name] = models.get(name, 0) + 1
    return {
        "count": len(calls),
        "llm": kinds.count("llm"),
        "rlm": kinds.count("rlm"),
        "errors": errors,
        "total_time": sum(times),
        "max_time": max(times, default=0.0),
        "usage": sum_usage(_call_usage(call) for call in calls),
        "models": models,
    }


def _call_usage(call: dict[str, Any]) -> dict[str, Any] | None:
    summaries = (call.get("usage_summary") or {}).get("model_usage_summaries")
    if not isinstance(summaries, dict):
        return None
    return sum_usage(
        {
            "calls": _int(s.get("total_calls")),
            "input_tokens": _int(s.get("total_input_tokens")),
            "output_tokens": _int(s.get("total_output_tokens")),
            "cost": s.get("total_cost") if isinstance(s.get("total_cost"), (int, float)) else None,
        }
        for s in summaries.values()
        if isinstance(s, dict)
    )


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0
