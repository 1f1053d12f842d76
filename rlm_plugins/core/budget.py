"""One `Budget` for a whole recursion tree: sub-calls, depth, wall clock, tokens and cost, plus per-model usage."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from rlm_plugins.core.ports import Usage
from rlm_plugins.errors import ConfigurationError


@dataclass(frozen=True)
class Limits:
    """The limits of a run tree. None lifts a limit; iterations count per run, the rest for the whole tree."""

    max_iterations: int = 20
    max_llm_calls: int | None = 100
    max_depth: int = 1
    max_time: float | None = None
    max_tokens: int | None = None
    max_cost: float | None = None
    max_errors: int | None = None
    """Consecutive turns whose code failed after which a run stops (finish_reason "max_errors"); per run."""

    def __post_init__(self) -> None:
        names = ("max_iterations", "max_llm_calls", "max_depth", "max_time", "max_tokens", "max_cost", "max_errors")
        for name in names:
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigurationError(f"{name}={value!r} must be >= 0 (or None for no limit)")
        if self.max_iterations < 1:
            raise ConfigurationError(f"max_iterations={self.max_iterations!r} must be at least 1")
        if self.max_errors == 0:
            raise ConfigurationError("max_errors=0 would stop every run at once; pass 1 or more (or None)")


class Budget:
    """Shared, thread-safe accounting for every run of one tree (the root run and its rlm_query children)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.started = time.monotonic()
        self.llm_calls = 0
        self.usage: dict[str, Usage] = {}
        self._lock = threading.Lock()

    def reserve_calls(self, n: int) -> str | None:
        """Reserve `n` model calls at once, all or nothing; returns the exhausted limit's name when refused.

        Nothing is reserved once time, tokens or cost have run out, so no call starts after a limit has passed.
        """
        reason = self.exhausted()
        if reason is not None:
            return reason
        with self._lock:
            cap = self.limits.max_llm_calls
            if cap is not None and self.llm_calls + n > cap:
                return "max_llm_calls"
            self.llm_calls += n
        return None

    def release_calls(self, n: int) -> None:
        """Give back `n` reserved calls that were never made (slots refused after a batch was reserved)."""
        with self._lock:
            self.llm_calls = max(0, self.llm_calls - n)

    def record(self, model: str, usage: Usage | None) -> None:
        """Add a model call's usage (a call with unknown usage still counts as one call)."""
        usage = usage or Usage(calls=1)
        with self._lock:
            self.usage.setdefault(model, Usage()).add(usage)

    def exhausted(self) -> str | None:
        """The name of the first tree-wide limit that has run out, if any."""
        limits = self.limits
        if limits.max_time is not None and self.elapsed() >= limits.max_time:
            return "max_time"
        with self._lock:
            totals = list(self.usage.values())
        if limits.max_tokens is not None and sum(u.total_tokens for u in totals) >= limits.max_tokens:
            return "max_tokens"
        if limits.max_cost is not None and sum(u.cost or 0.0 for u in totals) >= limits.max_cost:
            return "max_cost"
        return None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def time_left(self) -> float | None:
        if self.limits.max_time is None:
            return None
        return max(0.0, self.limits.max_time - self.elapsed())

    def usage_snapshot(self) -> dict[str, Usage]:
        with self._lock:
            return {name: usage.copy() for name, usage in self.usage.items()}
