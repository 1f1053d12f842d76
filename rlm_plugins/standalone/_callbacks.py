"""The official `rlms` callbacks (`on_iteration_*`, `on_subcall_*`) as an observer of the engine's events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlm_plugins.core.events import Event, RunStarted, SubCall, TurnFinished, TurnStarted

PREVIEW_CHARS = 80


class OfficialCallbacks:
    """Calls the official callbacks from a run tree's events; a failing callback is reported, never fatal.

    - `on_iteration_start(depth, iteration)` and `on_iteration_complete(depth, iteration, seconds)` for every
      turn of every run of the tree (iterations count from 1; the root run is depth 0);
    - `on_subcall_start(depth, model, prompt_preview)` when an `rlm_query` child starts (depth >= 1), and
      `on_subcall_complete(depth, model, seconds, error_or_None)` when it has finished.
    """

    def __init__(
        self,
        model: str,
        on_subcall_start: Callable[[int, str, str], Any] | None = None,
        on_subcall_complete: Callable[[int, str, float, str | None], Any] | None = None,
        on_iteration_start: Callable[[int, int], Any] | None = None,
        on_iteration_complete: Callable[[int, int, float], Any] | None = None,
    ) -> None:
        self.model = model
        self.on_subcall_start = on_subcall_start
        self.on_subcall_complete = on_subcall_complete
        self.on_iteration_start = on_iteration_start
        self.on_iteration_complete = on_iteration_complete

    def __bool__(self) -> bool:
        return any(
            (self.on_subcall_start, self.on_subcall_complete, self.on_iteration_start, self.on_iteration_complete)
        )

    def __call__(self, event: Event) -> None:
        if isinstance(event, TurnStarted) and self.on_iteration_start:
            self.on_iteration_start(event.depth, event.iteration)
        elif isinstance(event, TurnFinished) and self.on_iteration_complete:
            self.on_iteration_complete(event.depth, event.iteration, event.duration)
        elif isinstance(event, RunStarted) and event.parent_id is not None and self.on_subcall_start:
            shown = event.query or (event.variables[0].preview if event.variables else "")
            self.on_subcall_start(event.depth, self.model, shown[:PREVIEW_CHARS])
        elif isinstance(event, SubCall) and event.kind == "rlm" and self.on_subcall_complete:
            self.on_subcall_complete(event.depth + 1, self.model, event.duration, event.error)
