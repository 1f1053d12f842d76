"""Prometheus metrics served at `/metrics`: requests, runs in flight, run duration, sub-calls, tokens, errors."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from rlm_plugins.core.events import Event, SubCall
from rlm_plugins.core.ports import Usage

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The server's metrics, in a registry of their own (several apps in one process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter("rlm_requests", "HTTP requests by path and status", ["path", "status"], registry=reg)
        self.in_flight = Gauge("rlm_runs_in_flight", "runs being driven now", registry=reg)
        self.paused = Counter("rlm_runs_paused", "runs paused for the caller's tool calls", registry=reg)
        self.duration = Histogram(
            "rlm_run_duration_seconds",
            "wall-clock seconds of one request's run (until it answers or pauses)",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
            registry=reg,
        )
        self.sub_calls = Counter("rlm_sub_calls", "sub-model calls made by runs (llm_query and friends)", registry=reg)
        self.tokens = Counter("rlm_tokens", "tokens of root and sub calls", ["kind"], registry=reg)
        self.errors = Counter("rlm_errors", "error responses by type and code", ["type", "code"], registry=reg)
        self.waiting = Gauge("rlm_paused_runs", "runs paused for tool calls held by this process", registry=reg)

    def count_paused(self, store: Any) -> None:
        """Report the paused runs `store` holds (stores that can count them: the in-memory one)."""
        if hasattr(store, "__len__"):
            self.waiting.set_function(lambda: len(store))

    def observe(self, event: Event) -> None:
        """An engine observer: counts sub-calls."""
        if isinstance(event, SubCall):
            self.sub_calls.inc()

    def spent(self, usage: Usage) -> None:
        """Count a request's tokens."""
        self.tokens.labels("input").inc(usage.input_tokens)
        self.tokens.labels("output").inc(usage.output_tokens)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
