"""One budget for the whole recursion tree: children's turns count, batches stop once the spend passes a limit,
nothing runs after `max_time` or after the run returned. Each test runs sync and async."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from rlm_plugins.core.budget import Limits
from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.engine import Engine
from rlm_plugins.core.ports import Completion, Usage
from rlm_plugins.repl.factory import sandbox_factory


def repl(code):
    return f"```repl\n{code}\n```"


def turn_of(messages):
    return sum(1 for m in messages if m["role"] == "assistant")


def is_child(messages):
    """Children get 'CHILD ...' as their context; only the root's history shows the rlm_query call itself."""
    text = str(messages)
    return "CHILD" in text and "rlm_query(" + "f'CHILD" not in text and "rlm_query('CHILD" not in text


class Counter:
    """Thread-safe list of what happened."""

    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def add(self, item):
        with self.lock:
            self.items.append(item)

    def __len__(self):
        with self.lock:
            return len(self.items)


def engine_for(complete, sub=None, sandbox="inprocess", **kw):
    sub = sub or CallableSubModel(lambda p: f"sub:{p[:20]}", name="sub")
    factory = sandbox_factory(sandbox) if isinstance(sandbox, str) else sandbox
    return Engine(ChatPolicy(complete, model="root"), sub, factory, **kw)


@pytest.fixture(params=["sync", "async"])
def drive(request):
    """Run an engine sync or async; `after` (if given) runs while the event loop of an async run is still alive."""

    def run(engine, query, context=None, after=None):
        if request.param == "sync":
            result = engine.run(query, context)
            return result, (after() if after else None)

        async def main():
            result = await engine.arun(query, context)
            return result, (await asyncio.to_thread(after) if after else None)

        return asyncio.run(main())

    return run


def test_rlm_query_children_draw_on_the_one_call_budget(drive):
    """max_llm_calls=3 and 12 rlm_query calls: at most 3 model calls happen in children; the rest are refused."""
    child_calls = Counter()

    def complete(messages):
        if is_child(messages):
            child_calls.add(1)
            return repl("FINAL('child ok')")
        if turn_of(messages) == 0:
            return repl("r = [rlm_query(f'CHILD {i}') for i in range(12)]\nprint(r)")
        return repl("FINAL('root done')")

    engine = engine_for(complete, limits=Limits(max_llm_calls=3, max_depth=2))
    result, _ = drive(engine, "q", "c")
    assert len(child_calls) <= 3
    output = result.trajectory[0]["output"][0]
    assert output.count("child ok") == len(child_calls)
    assert "budget exhausted" in output


def test_a_childs_turns_and_extract_are_reserved_before_they_are_made(drive):
    """A child that never answers stops when the tree's calls are spent, its extract included."""
    child_calls = Counter()

    def complete(messages):
        if is_child(messages):
            child_calls.add(1)
            return repl("print('child working')")
        if turn_of(messages) == 0:
            return repl("print(rlm_query('CHILD task'))")
        return repl("FINAL('root done')")

    engine = engine_for(complete, limits=Limits(max_llm_calls=3, max_depth=2, max_iterations=10))
    result, _ = drive(engine, "q", "c")
    assert len(child_calls) == 3
    assert result.response == "root done"


@pytest.mark.parametrize(
    ("limits", "usage", "allowed", "reason"),
    [
        (Limits(max_cost=1.0, max_llm_calls=None), Usage(1, 0, 0, cost=0.125), 8, "max_cost"),
        (Limits(max_tokens=1000, max_llm_calls=None), Usage(1, 60, 40), 10, "max_tokens"),
    ],
)
def test_a_batch_stops_starting_slots_once_the_spend_passes_the_limit(drive, limits, usage, allowed, reason):
    """The overshoot is at most the calls already in flight (max_concurrency)."""
    calls = Counter()

    def sub(prompt):
        calls.add(prompt)
        time.sleep(0.01)
        return Completion("ok", usage, "sub")

    code = "r = llm_query_batched([str(i) for i in range(200)])\nprint(r.count('ok'), r[-1])"
    engine = engine_for(
        lambda m: repl(code) if turn_of(m) == 0 else "FINAL('x')",
        CallableSubModel(sub, name="sub"),
        limits=limits,
        max_concurrency=4,
    )
    result, _ = drive(engine, "q", "c")
    assert allowed <= len(calls) <= allowed + 4
    assert result.finish_reason == reason
    assert "budget exhausted" in result.trajectory[0]["output"][0]


def test_no_code_starts_once_max_time_is_spent(drive):
    ran = Counter()

    def complete(messages):
        time.sleep(0.6)
        return repl("mark()")

    engine = engine_for(complete, limits=Limits(max_time=0.5), tools={"mark": lambda: ran.add(1)})
    result, _ = drive(engine, "q", "c")
    assert len(ran) == 0
    assert result.finish_reason == "max_time"


def test_a_run_returns_only_when_its_children_have_stopped(drive):
    """The root's code times out while its rlm_query child runs: after run() returns no child code runs and no
    sandbox process of the tree is alive."""
    returned = threading.Event()
    late = Counter()
    sandboxes = []
    local = sandbox_factory("local")

    def factory(**kw):
        sandbox = local(**kw)
        sandboxes.append(sandbox)
        return sandbox

    def mark(tag):
        if returned.is_set():
            late.add(tag)

    def complete(messages):
        if is_child(messages):
            return repl("import time\nmark('child start')\ntime.sleep(0.8)\nmark('child end')")
        if turn_of(messages) == 0:
            return repl("print(rlm_query('CHILD task'))")
        return repl("FINAL('root done')")

    engine = engine_for(
        complete,
        sandbox=factory,
        limits=Limits(max_depth=2, max_iterations=6),
        exec_timeout=1.5,
        tools={"mark": mark},
    )

    def after():
        returned.set()
        alive = [s for s in sandboxes if s._proc is not None and s._proc.poll() is None]
        time.sleep(3.0)
        return alive

    result, alive = drive(engine, "q", "c", after=after)
    assert result.response == "root done"
    assert len(sandboxes) == 2
    assert alive == []
    assert late.items == []
