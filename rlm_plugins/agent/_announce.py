"""The agent's policy wrapper: it announces each root step (`StepStarted`) before asking the real policy."""

from __future__ import annotations

from typing import Any

from rlm_plugins.agent.events import EventTranslator
from rlm_plugins.core.ports import Action, Completion, Policy, RunState


class AnnouncingPolicy:
    """A `Policy` that tells `events` when the top-level run asks its root model for a step, then delegates."""

    def __init__(self, inner: Policy, events: EventTranslator) -> None:
        self.inner = inner
        self.events = events
        self.model = getattr(inner, "model", None)

    def act(self, state: RunState) -> Action:
        self._announce(state)
        return self.inner.act(state)

    async def aact(self, state: RunState) -> Action:
        self._announce(state)
        return await self.inner.aact(state)

    def extract(self, state: RunState) -> Completion | str:
        return self.inner.extract(state)

    async def aextract(self, state: RunState) -> Completion | str:
        return await self.inner.aextract(state)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _announce(self, state: RunState) -> None:
        if state.depth == 0:
            self.events.announce(state.iteration, state.max_iterations)
