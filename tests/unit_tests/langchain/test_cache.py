"""The LLM cache: an outer hit skips the whole run, keys never collide, sub-calls are cached under their own model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache

from rlm_plugins.langchain import ChatRLM
from tests.unit_tests.langchain.scripted import ScriptedRoot, ScriptedSub


class CountingSub(ScriptedSub):
    calls: int = 0

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.calls += 1
        return super()._generate(messages, stop, run_manager, **kwargs)


class CountingRoot(ScriptedRoot):
    calls: int = 0

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.calls += 1
        return super()._generate(messages, stop, run_manager, **kwargs)


@pytest.fixture
def cache() -> Iterator[InMemoryCache]:
    cache = InMemoryCache()
    set_llm_cache(cache)
    yield cache
    set_llm_cache(None)


def test_outer_hit_skips_the_whole_run(cache: InMemoryCache) -> None:
    root, sub = CountingRoot(), CountingSub()
    rlm = ChatRLM(root=root, sub=sub, sandbox="inprocess")
    first = rlm.invoke("What is an RLM?")
    calls = (root.calls, sub.calls)
    second = rlm.invoke("What is an RLM?")
    assert second.text == first.text
    assert (root.calls, sub.calls) == calls == (1, 1)


async def test_outer_hit_skips_the_whole_run_async(cache: InMemoryCache) -> None:
    root, sub = CountingRoot(), CountingSub()
    rlm = ChatRLM(root=root, sub=sub, sandbox="inprocess")
    first = await rlm.ainvoke("What is an RLM?")
    second = await rlm.ainvoke("What is an RLM?")
    assert second.text == first.text and (root.calls, sub.calls) == (1, 1)


def test_models_that_differ_in_root_sub_or_budget_never_share_a_key(cache: InMemoryCache) -> None:
    variants = [
        ChatRLM(root=ScriptedRoot(), sub=ScriptedSub(), sandbox="inprocess"),
        ChatRLM(root=ScriptedRoot(name_tag="r2"), sub=ScriptedSub(), sandbox="inprocess"),
        ChatRLM(root=ScriptedRoot(), sub=ScriptedSub(prefix="Other sub"), sandbox="inprocess"),
        ChatRLM(root=ScriptedRoot(), sub=ScriptedSub(), sandbox="inprocess", max_llm_calls=5),
    ]
    answers = [model.invoke("Hello").text for model in variants]
    assert answers[2].startswith("Other sub") and answers[0].startswith("Scripted answer")
    outer_keys = {model._get_llm_string() for model in variants}
    assert len(outer_keys) == 4


def test_sub_calls_are_cached_under_their_own_model(cache: InMemoryCache) -> None:
    sub = CountingSub()
    ChatRLM(root=ScriptedRoot(), sub=sub, sandbox="inprocess").invoke("Hello")
    # another RLM (a different budget, so the outer key differs) asks the same sub-question: served from the cache
    ChatRLM(root=ScriptedRoot(), sub=sub, sandbox="inprocess", max_iterations=5).invoke("Hello")
    assert sub.calls == 1
    sub_keys = [key for key in cache._cache if key[1] == sub._get_llm_string()]
    assert len(sub_keys) == 1  # one entry under the sub-model's own key; the two outer runs have theirs
    # plus one root turn per RLM (their prompts differ: "Turn 1 of 20" / "of 5") and one outer entry per RLM
    assert len(cache._cache) == 5
