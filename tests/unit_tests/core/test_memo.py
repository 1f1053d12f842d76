"""Sub-call memoisation: one model call per distinct prompt, duplicates in flight wait, failures are not kept."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.memo import MemoSubModel
from rlm_plugins.core.ports import Completion, Usage


class Counting:
    """A sub-model that counts its calls and can be held until released."""

    def __init__(self, name: str = "sub", fail_first: bool = False) -> None:
        self.name = name
        self.calls: list[str] = []
        self.release = threading.Event()
        self.release.set()
        self.fail_first = fail_first
        self._lock = threading.Lock()

    def _answer(self, prompt: str) -> Completion:
        with self._lock:
            self.calls.append(prompt)
            failing = self.fail_first and len(self.calls) == 1
        if failing:
            raise RuntimeError("provider down")
        return Completion(prompt.upper(), Usage(calls=1, input_tokens=3, output_tokens=2), self.name)

    def query(self, prompt: str) -> Completion:
        self.release.wait(10)
        return self._answer(prompt)

    async def aquery(self, prompt: str) -> Completion:
        while not self.release.is_set():
            await asyncio.sleep(0.005)
        return self._answer(prompt)


def test_a_repeated_prompt_is_answered_once_and_counted_as_a_hit():
    sub = Counting()
    memo = MemoSubModel(sub)
    first, second, other = memo.query("a"), memo.query("a"), memo.query("b")
    assert sub.calls == ["a", "b"]
    assert first.usage.calls == 1 and first.text == "A"
    assert second.text == "A" and second.usage == Usage(calls=0, memo_hits=1)
    assert other.text == "B"


async def test_a_repeated_prompt_is_answered_once_async():
    sub = Counting()
    memo = MemoSubModel(sub)
    assert [(await memo.aquery(p)).text for p in ("a", "a", "b")] == ["A", "A", "B"]
    assert sub.calls == ["a", "b"]


def test_concurrent_duplicates_in_threads_wait_for_the_first_call():
    sub = Counting()
    sub.release.clear()
    memo = MemoSubModel(sub)
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(memo.query, "same") for _ in range(16)]
        threading.Event().wait(0.05)
        sub.release.set()
        results = [f.result(timeout=10) for f in futures]
    assert sub.calls == ["same"]
    assert {r.text for r in results} == {"SAME"}
    assert sum(r.usage.memo_hits for r in results) == 15
    assert sum(r.usage.calls for r in results) == 1


async def test_concurrent_duplicates_in_tasks_wait_for_the_first_call():
    sub = Counting()
    sub.release.clear()
    memo = MemoSubModel(sub)
    tasks = [asyncio.create_task(memo.aquery(p)) for p in ["x"] * 16 + ["y"] * 4]
    await asyncio.sleep(0.02)
    sub.release.set()
    results = await asyncio.gather(*tasks)
    assert sorted(sub.calls) == ["x", "y"]
    assert sum(r.usage.memo_hits for r in results) == 18


def test_a_failure_reaches_every_waiter_and_is_not_remembered():
    sub = Counting(fail_first=True)
    sub.release.clear()
    memo = MemoSubModel(sub)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(memo.query, "p") for _ in range(4)]
        threading.Event().wait(0.05)
        sub.release.set()
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(timeout=10).text)
            except RuntimeError as exc:
                outcomes.append(str(exc))
    assert "provider down" in outcomes
    assert memo.query("p").text == "P"
    assert len(sub.calls) >= 2


async def test_a_failure_is_not_remembered_async():
    sub = Counting(fail_first=True)
    memo = MemoSubModel(sub)
    with pytest.raises(RuntimeError, match="provider down"):
        await memo.aquery("p")
    assert (await memo.aquery("p")).text == "P"
    assert sub.calls == ["p", "p"]


def test_sub_models_with_different_keys_do_not_share_answers():
    upper = MemoSubModel(CallableSubModel(str.upper, name="m"))
    lower = MemoSubModel(CallableSubModel(str.lower, name="n"))
    assert (upper.query("Hi").text, lower.query("Hi").text) == ("HI", "hi")


def test_each_scope_starts_empty_and_a_directory_persists_across_them(tmp_path):
    sub = Counting()
    memo = MemoSubModel(sub)
    memo.query("a")
    memo.scope().query("a")
    assert sub.calls == ["a", "a"]
    stored = MemoSubModel(sub, directory=tmp_path / "memo")
    stored.query("q")
    again = MemoSubModel(Counting(), directory=tmp_path / "memo").scope().query("q")
    assert again.text == "Q" and again.usage.memo_hits == 1
    assert sub.calls == ["a", "a", "q"]
    assert len(list((tmp_path / "memo").rglob("*.json"))) == 1


async def test_a_directory_serves_the_async_path_too(tmp_path):
    MemoSubModel(Counting(), directory=tmp_path).query("q")
    fresh = Counting()
    completion = await MemoSubModel(fresh, directory=tmp_path).aquery("q")
    assert completion.text == "Q" and fresh.calls == []
