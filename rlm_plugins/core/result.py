"""What a run returns: the answer, why it ended, what it cost, and the trajectory that led there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlm_plugins.core.cost import CostReport
from rlm_plugins.core.ports import Step, Usage

FINISH_REASONS = (
    "final",
    "max_iterations",
    "max_llm_calls",
    "max_time",
    "max_tokens",
    "max_cost",
    "max_errors",
    "sandbox_error",
)


@dataclass
class RLMResult:
    """The outcome of one RLM run.

    `finish_reason` says what ended the run: "final" when the model's code called FINAL (or SUBMIT), else the
    limit that ran out, "sandbox_error", or "error". `answer` is the value passed to FINAL (or the SUBMIT fields),
    before it was turned into text, and is None whenever `finish_reason` is not "final". `extracted` is the text of
    the extract step (the root model's last-chance guess once the budget ran out), None after a final answer.
    `response` is text for chat-style callers: the final answer, else the extracted text (check `finish_reason`).
    """

    response: str
    answer: Any
    finish_reason: str
    steps: list[Step]
    usage: dict[str, Usage]
    execution_time: float
    fields: dict[str, Any] | None = None
    run_id: str = ""
    depth: int = 0
    error: str | None = None
    sub_calls: list[dict[str, Any]] = field(default_factory=list)
    extracted: str | None = None

    def __post_init__(self) -> None:
        if self.finish_reason != "final" and self.answer is not None:
            self.extracted = self.extracted if self.extracted is not None else self.response
            self.answer = None

    @property
    def iterations(self) -> int:
        return len(self.steps)

    @property
    def total_usage(self) -> Usage:
        total = Usage()
        for usage in self.usage.values():
            total.add(usage)
        return total

    @property
    def cost_report(self) -> CostReport:
        """Per model: calls, input / cached / output tokens and USD where priced, summed over the run tree."""
        return CostReport.from_usage(self.usage)

    @property
    def usage_summary(self) -> UsageSummary:
        """Usage in the official `rlms` shape (`model_usage_summaries`, `to_dict()`), for code written for it."""
        return UsageSummary.from_usage(self.usage)

    @property
    def trajectory(self) -> list[dict[str, Any]]:
        """The steps as plain dicts: reasoning, code, output per code block."""
        out = []
        for step in self.steps:
            out.append(
                {
                    "iteration": step.iteration,
                    "reasoning": step.reasoning,
                    "code": [run.code for run in step.runs],
                    "output": [_output(run.result) for run in step.runs],
                    "notes": list(step.notes),
                }
            )
        return out


@dataclass
class ModelUsageSummary:
    """One model's calls, tokens and cost, shaped like the official `rlms` package's `ModelUsageSummary`."""

    total_calls: int
    total_input_tokens: int
    total_output_tokens: int
    total_cost: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "total_calls": self.total_calls,
            "total_input_tokens": self.total_input_tokens,
            "total_output_tokens": self.total_output_tokens,
        }
        if self.total_cost is not None:
            out["total_cost"] = self.total_cost
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelUsageSummary:
        return cls(
            int(data.get("total_calls") or 0),
            int(data.get("total_input_tokens") or 0),
            int(data.get("total_output_tokens") or 0),
            data.get("total_cost"),
        )


@dataclass
class UsageSummary:
    """Per-model usage shaped like the official package's `UsageSummary` (keyed by model name)."""

    model_usage_summaries: dict[str, ModelUsageSummary] = field(default_factory=dict)

    @classmethod
    def from_usage(cls, usage: dict[str, Usage], names: dict[str, str] | None = None) -> UsageSummary:
        """From per-model `Usage`; `names` renames models (usage of models renamed alike is summed)."""
        merged: dict[str, Usage] = {}
        for model, u in usage.items():
            merged.setdefault((names or {}).get(model, model), Usage()).add(u)
        return cls(
            {model: ModelUsageSummary(u.calls, u.input_tokens, u.output_tokens, u.cost) for model, u in merged.items()}
        )

    @property
    def total_input_tokens(self) -> int:
        return sum(u.total_input_tokens for u in self.model_usage_summaries.values())

    @property
    def total_output_tokens(self) -> int:
        return sum(u.total_output_tokens for u in self.model_usage_summaries.values())

    @property
    def total_cost(self) -> float | None:
        costs = [u.total_cost for u in self.model_usage_summaries.values() if u.total_cost is not None]
        return sum(costs) if costs else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model_usage_summaries": {model: u.to_dict() for model, u in self.model_usage_summaries.items()}
        }
        if self.total_cost is not None:
            out["total_cost"] = self.total_cost
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UsageSummary:
        summaries = data.get("model_usage_summaries") or {}
        return cls({model: ModelUsageSummary.from_dict(u) for model, u in summaries.items()})


def _output(result: Any) -> str:
    parts = [result.stdout]
    if result.stderr:
        parts.append(result.stderr)
    if result.error is not None:
        parts.append(str(result.error))
    if result.timed_out:
        parts.append("[timed out]")
    return "\n".join(p for p in parts if p)
