"""Process-wide limits per model: a concurrency gate and a requests/tokens-per-minute rate limiter.

Both serve threads and event loops alike (sync runs call from worker threads, async runs from one or more loops),
so one limit holds for the whole recursion tree and for every concurrent run in the process: a big fan-out
queues instead of provoking a storm of 429s. `shared_limits(key, ...)` returns the one `ModelLimits` per key.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from rlm_plugins.errors import ConfigurationError

BURST_SECONDS = 10.0
"""A rate limiter lets this many seconds' worth of its per-minute rate start at once, then spaces the rest."""


class _Waiter:
    __slots__ = ("granted", "wake")

    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake
        self.granted = False


class Gate:
    """A counting semaphore that threads and coroutines (on any event loop) share, first come first served."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._busy = 0
        self._waiters: collections.deque[_Waiter] = collections.deque()

    @property
    def limit(self) -> int:
        return self._limit

    def resize(self, limit: int) -> None:
        """Change the limit; waiters start at once if the new limit has room."""
        with self._lock:
            self._limit = limit
            woken = self._grant_locked()
        for waiter in woken:
            waiter.wake()

    def _grant_locked(self) -> list[_Waiter]:
        woken = []
        while self._waiters and self._busy < self._limit:
            waiter = self._waiters.popleft()
            waiter.granted = True
            self._busy += 1
            woken.append(waiter)
        return woken

    def acquire(self) -> None:
        """Block the calling thread until a slot is free."""
        with self._lock:
            if self._busy < self._limit and not self._waiters:
                self._busy += 1
                return
            event = threading.Event()
            self._waiters.append(_Waiter(event.set))
        event.wait()

    async def aacquire(self) -> None:
        """Wait for a slot without blocking the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(lambda: future.done() or future.set_result(None))
            except RuntimeError:
                self.release()

        with self._lock:
            if self._busy < self._limit and not self._waiters:
                self._busy += 1
                return
            waiter = _Waiter(wake)
            self._waiters.append(waiter)
        try:
            await future
        except asyncio.CancelledError:
            with self._lock:
                granted = waiter.granted
                if not granted:
                    self._waiters.remove(waiter)
            if granted:
                self.release()
            raise

    def release(self) -> None:
        """Free a slot, handing it to the longest waiter."""
        with self._lock:
            self._busy -= 1
            woken = self._grant_locked()
        for waiter in woken:
            waiter.wake()


@dataclass
class _Bucket:
    per_minute: float
    level: float = 0.0
    updated: float = 0.0

    @property
    def capacity(self) -> float:
        return max(1.0, self.per_minute * BURST_SECONDS / 60)

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.per_minute / 60)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        missing = min(amount, self.capacity) - self.level
        return max(missing, 0.0) * 60 / self.per_minute


@dataclass
class RateLimiter:
    """Requests and tokens per minute, as token buckets that may go into debt: each call reserves its share
    and is told how long to wait, so callers start in the order they asked, spaced at the configured rate.

    Args:
        rpm: requests per minute, or None for no request limit.
        tpm: tokens per minute (prompt estimate plus max output), or None for no token limit.
        clock: the monotonic clock (tests pass a fake one).
        sleep: how `acquire` waits; `asleep`: how `aacquire` waits (tests record the waits instead).
    """

    rpm: float | None = None
    tpm: float | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Any] = time.sleep
    asleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _buckets: dict[str, _Bucket] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigurationError(f"{name}={value!r} must be > 0 (or None for no limit)")
        self.configure(self.rpm, self.tpm)

    def configure(self, rpm: float | None, tpm: float | None) -> None:
        """Set new rates; a bucket that is new starts full."""
        with self._lock:
            self.rpm, self.tpm = rpm, tpm
            now = self.clock()
            for name, rate in (("requests", rpm), ("tokens", tpm)):
                if rate is None:
                    self._buckets.pop(name, None)
                elif name in self._buckets:
                    self._buckets[name].per_minute = rate
                else:
                    bucket = _Bucket(rate, updated=now)
                    bucket.level = bucket.capacity
                    self._buckets[name] = bucket

    def reserve(self, tokens: int = 0) -> float:
        """Reserve one request of about `tokens` tokens; returns the seconds to wait before sending it."""
        with self._lock:
            now = self.clock()
            wait = 0.0
            amounts = {"requests": 1.0, "tokens": float(tokens)}
            for name, bucket in self._buckets.items():
                bucket.refill(now)
                wait = max(wait, bucket.wait_for(amounts[name]))
            for name, bucket in self._buckets.items():
                bucket.level -= amounts[name]
            return wait

    def settle(self, reserved: int, used: int) -> None:
        """Correct the token bucket once a call reports what it really used."""
        with self._lock:
            bucket = self._buckets.get("tokens")
            if bucket is not None:
                bucket.level += reserved - used

    def acquire(self, tokens: int = 0) -> None:
        """Reserve and sleep until the call may start."""
        wait = self.reserve(tokens)
        if wait > 0:
            self.sleep(wait)

    async def aacquire(self, tokens: int = 0) -> None:
        """Reserve and wait without blocking the event loop."""
        wait = self.reserve(tokens)
        if wait > 0:
            await self.asleep(wait)


@dataclass
class ModelLimits:
    """The limits shared by every call to one model in this process: concurrency, then rate."""

    gate: Gate | None = None
    rate: RateLimiter | None = None


_registry: dict[str, ModelLimits] = {}
_registry_lock = threading.Lock()


def shared_limits(
    key: str, *, max_concurrency: int | None = None, rpm: float | None = None, tpm: float | None = None
) -> ModelLimits:
    """The process-wide limits for `key` (a model and its endpoint); given values replace earlier ones."""
    if max_concurrency is not None and max_concurrency < 1:
        raise ConfigurationError(f"max_concurrency={max_concurrency} must be at least 1 (or None for no limit)")
    with _registry_lock:
        limits = _registry.setdefault(key, ModelLimits())
        if max_concurrency is not None:
            if limits.gate is None:
                limits.gate = Gate(max_concurrency)
            elif limits.gate.limit != max_concurrency:
                limits.gate.resize(max_concurrency)
        if rpm is not None or tpm is not None:
            if limits.rate is None:
                limits.rate = RateLimiter(rpm, tpm)
            else:
                limits.rate.configure(rpm, tpm)
        return limits
