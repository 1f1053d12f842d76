"""`CostReport`: what a run tree's model calls cost, per model: calls, input / cached / output tokens, USD."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rlm_plugins.core.ports import Usage


@dataclass(frozen=True)
class ModelCost:
    """One model's share of a run tree; `cost` is None when no call to it was priced."""

    model: str
    calls: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost: float | None
    memo_hits: int = 0
    compactions: int = 0


@dataclass(frozen=True)
class CostReport:
    """Per-model usage and USD of a whole run tree (the root run and every child), with totals.

    Examples:
        >>> report = CostReport.from_usage({"openai/gpt-5-mini": Usage(2, 1000, 100, 0.0012, 800)})
        >>> report.total_cost, report.cached_input_tokens
        (0.0012, 800)
    """

    models: tuple[ModelCost, ...]

    @classmethod
    def from_usage(cls, usage: dict[str, Usage]) -> CostReport:
        """Build the report from a result's per-model usage."""
        return cls(tuple(_row(name, u) for name, u in sorted(usage.items())))

    @property
    def total(self) -> ModelCost:
        """The sums over every model; its `cost` is None when no model was priced."""
        summed = Usage()
        for row in self.models:
            summed.add(
                Usage(
                    row.calls,
                    row.input_tokens,
                    row.output_tokens,
                    row.cost,
                    row.cached_input_tokens,
                    row.memo_hits,
                    row.compactions,
                )
            )
        return _row("total", summed)

    @property
    def total_cost(self) -> float | None:
        """USD over every priced model; None when none was priced."""
        return self.total.cost

    @property
    def cached_input_tokens(self) -> int:
        return self.total.cached_input_tokens

    @property
    def unpriced(self) -> list[str]:
        """Models whose calls have no known price (their USD is missing from `total_cost`)."""
        return [row.model for row in self.models if row.cost is None and row.calls]

    def as_dict(self) -> dict[str, Any]:
        """Plain data: the per-model rows, the totals and the unpriced models."""
        total = asdict(self.total)
        del total["model"]
        return {"models": [asdict(row) for row in self.models], "total": total, "unpriced": self.unpriced}

    def __str__(self) -> str:
        lines = ["model | calls | input tokens | cached | output tokens | memo hits | USD"]
        for row in (*self.models, self.total):
            usd = "-" if row.cost is None else f"{row.cost:.6f}"
            lines.append(
                f"{row.model} | {row.calls} | {row.input_tokens:,} | {row.cached_input_tokens:,} | "
                f"{row.output_tokens:,} | {row.memo_hits} | {usd}"
            )
        return "\n".join(lines)


def _row(name: str, u: Usage) -> ModelCost:
    return ModelCost(
        name, u.calls, u.input_tokens, u.cached_input_tokens, u.output_tokens, u.cost, u.memo_hits, u.compactions
    )
