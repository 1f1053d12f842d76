"""What one DSPy model call cost, for the engine's budget; and its provider errors as the `ModelError` family.

DSPy reports a call's tokens to `dspy.settings.usage_tracker` (cache hits excluded) and its cost in the history
entry it appends to the LM and to every module in `dspy.settings.caller_modules`. `metered()` puts a tracker that
also forwards to the caller's own tracker (so `track_usage` and `get_lm_usage()` still see every call) and a
collector module in place for the block, and reads both afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import dspy
from dspy.utils.exceptions import LMError
from dspy.utils.usage_tracker import UsageTracker

from rlm_plugins.core.model_errors import as_sub_model_error, from_provider
from rlm_plugins.core.ports import Usage
from rlm_plugins.dspy._context import applied
from rlm_plugins.dspy.errors import lm_model_error
from rlm_plugins.errors import RLMError


class _Tracker(UsageTracker):
    """Keeps the usage entries of a block's billed calls and forwards them to the caller's tracker."""

    def __init__(self, parent: Any) -> None:
        super().__init__()
        self.parent = parent
        self.entries: list[dict[str, Any]] = []

    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
        self.entries.append(usage_entry)
        if self.parent is not None:
            self.parent.add_usage(lm, usage_entry)


class _Collector:
    """Stands in the caller-module list to receive the history entries (with cost) of the block's calls."""

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []


class Meter:
    """The usage of the DSPy LM calls made inside one `metered()` block."""

    def __init__(self, tracker: _Tracker, collector: _Collector) -> None:
        self._tracker = tracker
        self._collector = collector

    @property
    def model(self) -> str | None:
        """The model of the block's first recorded call, if any."""
        entries = self._collector.history
        return str(entries[0].get("model")) if entries and entries[0].get("model") else None

    def usage(self) -> Usage | None:
        """Tokens and cost of the block's calls; cache hits count as calls that cost nothing."""
        entries, billed = self._collector.history, self._tracker.entries
        if not entries and not billed:
            return None
        usage = Usage(calls=max(len(entries), len(billed), 1))
        for record in billed:
            usage.input_tokens += _int(record, "prompt_tokens", "input_tokens")
            usage.output_tokens += _int(record, "completion_tokens", "output_tokens")
        costs = [entry.get("cost") for entry in entries]
        if billed and any(isinstance(cost, (int, float)) for cost in costs):
            usage.cost = float(sum(cost for cost in costs if isinstance(cost, (int, float))))
        return usage


def _int(record: dict[str, Any], *keys: str) -> int:
    for key in keys:
        value = record.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return 0


@contextlib.contextmanager
def metered(overrides: dict[str, Any], model: str, *, sub: bool = False) -> Iterator[Meter]:
    """Run a block of DSPy model calls under `overrides`, measuring their usage.

    A provider failure inside the block (a `dspy` `LMError`, or a provider SDK's exception) leaves it as a
    `ModelError` subclass that is also DSPy's matching `LMError` (see `rlm_plugins.dspy.errors`), or as a
    `SubModelError` when `sub` is set, chained to the original.
    """
    tracker = _Tracker(_setting(overrides, "usage_tracker"))
    collector = _Collector()
    callers = [collector, *(_setting(overrides, "caller_modules") or [])]
    with applied({**overrides, "usage_tracker": tracker, "caller_modules": callers}):
        try:
            yield Meter(tracker, collector)
        except Exception as exc:
            if isinstance(exc, RLMError) or not (isinstance(exc, LMError) or from_provider(exc)):
                raise
            raise (as_sub_model_error(exc, model) if sub else lm_model_error(exc, model)) from exc


def _setting(overrides: dict[str, Any], name: str) -> Any:
    """A DSPy setting as it is under `overrides` in this thread."""
    return overrides[name] if name in overrides else dspy.settings.get(name)
