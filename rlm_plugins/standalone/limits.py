"""`on_limit="raise"`: a run that stopped at a limit raises the official `rlms` package's exception for it.

The engine always ends such a run with a result (`finish_reason` names the limit, `response` the extract step's
best answer). Code written for the official package instead catches `TimeoutExceededError` and friends; this
turns the result into that exception, keeping the result on it.
"""

from __future__ import annotations

from rlm_plugins.core.budget import Limits
from rlm_plugins.core.result import RLMResult
from rlm_plugins.errors import (
    BudgetExceededError,
    CancellationError,
    ConfigurationError,
    ErrorThresholdExceededError,
    LimitExceededError,
    TimeoutExceededError,
    TokenLimitExceededError,
)

ON_LIMIT = ("raise", "return")


def check_on_limit(on_limit: str | None, official: bool) -> str:
    """The policy in force: as given, else "raise" with the official call shape (`backend=`), "return" with ours."""
    if on_limit is None:
        return "raise" if official else "return"
    if on_limit not in ON_LIMIT:
        raise ConfigurationError(f"on_limit={on_limit!r}: pass 'raise' (the official rlms way) or 'return'")
    return on_limit


def limit_error(result: RLMResult, limits: Limits) -> LimitExceededError | None:
    """The exception the official package raises for the limit that ended `result`, or None (it answered, or it
    ran out of iterations or sub-calls, where the official package also returns its best answer)."""
    extra = {"partial_answer": result.response or None, "result": result}
    reason = result.finish_reason
    if reason == "max_cost":
        return BudgetExceededError(result.usage_summary.total_cost or 0.0, limits.max_cost or 0.0, **extra)
    if reason == "max_time":
        return TimeoutExceededError(result.execution_time, limits.max_time or 0.0, **extra)
    if reason == "max_tokens":
        total = result.total_usage
        return TokenLimitExceededError(total.input_tokens + total.output_tokens, limits.max_tokens or 0, **extra)
    if reason == "max_errors":
        threshold = limits.max_errors or 0
        return ErrorThresholdExceededError(threshold, threshold, _last_error(result), **extra)
    if reason == "cancelled":
        return CancellationError(**extra)
    return None


def _last_error(result: RLMResult) -> str | None:
    for step in reversed(result.steps):
        for run in reversed(step.runs):
            if run.result.error is not None:
                return str(run.result.error)
    return None
