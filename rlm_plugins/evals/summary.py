"""Per-method statistics of an evaluation: mean score with a 95% interval, cost and time percentiles, and how
runs ended."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from typing import Any

_Z95 = 1.96


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean_ci(scores: list[float]) -> tuple[float, float, float]:
    """Mean and a 95% normal-approximation interval, clipped to [0, 1]."""
    mean = statistics.fmean(scores)
    if len(scores) < 2:
        return mean, mean, mean
    half = _Z95 * statistics.stdev(scores) / math.sqrt(len(scores))
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary per (task, method), in the order they first appear."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["method"]), []).append(row)
    out = []
    for (task, method), group in groups.items():
        mean, low, high = mean_ci([row["score"] for row in group])
        costs = [row["cost"] for row in group if row.get("cost") is not None]
        tokens = [float(row["usage"]["total_tokens"]) for row in group]
        seconds = [row["seconds"] for row in group]
        out.append(
            {
                "task": task,
                "method": method,
                "n": len(group),
                "score": mean,
                "ci95": [low, high],
                "cost": _spread(costs),
                "tokens": _spread(tokens),
                "seconds": _spread(seconds),
                "finish_reasons": dict(Counter(row["finish_reason"] for row in group)),
            }
        )
    return out


def _spread(values: list[float]) -> dict[str, float | None]:
    return {
        "mean": statistics.fmean(values) if values else None,
        "median": percentile(values, 50),
        "p95": percentile(values, 95),
    }


def table_rows(summary: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The summary as a header and rows of text, for the console and the report."""
    header = ["task", "method", "n", "score (95% CI)", "cost mean/median/p95", "tokens mean", "time mean/median/p95"]
    rows = []
    for item in summary:
        low, high = item["ci95"]
        cost, secs = item["cost"], item["seconds"]
        rows.append(
            [
                item["task"],
                item["method"],
                str(item["n"]),
                f"{item['score']:.3f} ({low:.2f}-{high:.2f})",
                "n/a" if cost["mean"] is None else "/".join(f"${cost[k]:.4f}" for k in ("mean", "median", "p95")),
                f"{item['tokens']['mean']:,.0f}",
                "/".join(f"{secs[k]:.2f}s" for k in ("mean", "median", "p95")),
                ", ".join(f"{k}: {v}" for k, v in sorted(item["finish_reasons"].items())),
            ]
        )
    return [*header, "finish reasons"], rows
