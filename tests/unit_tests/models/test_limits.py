"""The process-wide concurrency gate and the requests/tokens-per-minute limiter, under 64 concurrent callers."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.models.limits import BURST_SECONDS, Gate, RateLimiter, shared_limits


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def starts_within_rate(starts: list[float], per_minute: float) -> None:
    """No window [0, t] holds more starts than the burst plus what the rate refills in t."""
    burst = per_minute * BURST_SECONDS / 60
    for count, start in enumerate(sorted(starts), 1):
        assert count <= burst + start * per_minute / 60 + 1e-6, (count, start)


async def test_64_concurrent_calls_are_spaced_at_the_request_rate():
    clock = FakeClock()
    limiter = RateLimiter(rpm=120, clock=clock)
    starts: list[float] = []

    async def one() -> None:
        starts.append(limiter.reserve())

    await asyncio.gather(*(one() for _ in range(64)))
    starts_within_rate(starts, 120)
    assert starts.count(0.0) == 20
    assert max(starts) == pytest.approx((64 - 20) * 0.5)


def test_64_threads_are_spaced_at_the_token_rate():
    clock = FakeClock()
    limiter = RateLimiter(tpm=60_000, clock=clock)
    with ThreadPoolExecutor(64) as pool:
        starts = list(pool.map(lambda _: limiter.reserve(1_000), range(64)))
    assert starts.count(0.0) == 10
    assert max(starts) == pytest.approx(54.0)


def test_the_bucket_refills_with_time_and_settles_real_usage():
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, tpm=6_000, clock=clock)
    assert [limiter.reserve(100) for _ in range(10)] == [0.0] * 10
    assert limiter.reserve(100) == pytest.approx(1.0)
    clock.now += 60
    assert limiter.reserve(100) == 0.0
    limiter.settle(reserved=5_000, used=0)
    assert limiter.reserve(900) == 0.0


def test_rate_limits_must_be_positive():
    with pytest.raises(ConfigurationError, match="rpm"):
        RateLimiter(rpm=0)


def test_gate_never_lets_more_than_its_limit_through_from_64_threads():
    gate = Gate(4)
    lock = threading.Lock()
    active, peak = 0, 0

    def work(_: int) -> None:
        nonlocal active, peak
        gate.acquire()
        try:
            with lock:
                active += 1
                peak = max(peak, active)
            threading.Event().wait(0.002)
            with lock:
                active -= 1
        finally:
            gate.release()

    with ThreadPoolExecutor(64) as pool:
        list(pool.map(work, range(64)))
    assert peak == 4


async def test_gate_serves_coroutines_and_threads_together():
    gate = Gate(2)
    active, peak = 0, 0
    lock = threading.Lock()

    def enter() -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)

    def leave() -> None:
        nonlocal active
        with lock:
            active -= 1

    async def task() -> None:
        await gate.aacquire()
        enter()
        await asyncio.sleep(0.002)
        leave()
        gate.release()

    def thread_work() -> None:
        gate.acquire()
        enter()
        threading.Event().wait(0.002)
        leave()
        gate.release()

    threads = [asyncio.to_thread(thread_work) for _ in range(16)]
    await asyncio.gather(*(task() for _ in range(48)), *threads)
    assert peak == 2


async def test_a_cancelled_waiter_gives_its_place_back():
    gate = Gate(1)
    await gate.aacquire()
    waiter = asyncio.create_task(gate.aacquire())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.release()
    await asyncio.wait_for(gate.aacquire(), 5)
    gate.release()


def test_shared_limits_are_one_per_key_and_take_new_values():
    first = shared_limits("test-model@shared", max_concurrency=3, rpm=100)
    again = shared_limits("test-model@shared")
    assert again is first and first.gate.limit == 3
    shared_limits("test-model@shared", max_concurrency=5, rpm=200)
    assert first.gate.limit == 5 and first.rate.rpm == 200
    assert shared_limits("test-model@other").gate is None
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        shared_limits("test-model@bad", max_concurrency=0)
