"""The engine over scripted root models and real sandboxes: finish reasons, malformed replies, sub-calls, depth,
concurrency. Each sync test has an async twin through the `drive` fixture."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rlm_plugins.core.budget import Limits
from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.engine import Engine
from rlm_plugins.core.events import CodeExecuted, RunFinished, RunStarted, SubCall
from rlm_plugins.core.ports import Completion, Usage
from rlm_plugins.repl.factory import sandbox_factory


def script(*replies, extract="extracted"):
    """A root model that answers turn by turn (counted from the assistant messages it is sent)."""
    seen = []

    def complete(messages):
        seen.append(messages)
        if "no more code will run" in messages[-1]["content"]:
            return extract
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if turn >= len(replies):
            return extract
        reply = replies[turn]
        return reply(messages) if callable(reply) else reply

    complete.seen = seen
    return complete


def engine_for(complete, sub=None, sandbox="inprocess", **kw):
    sub = sub or CallableSubModel(lambda p: f"sub:{p[:20]}", name="sub")
    return Engine(ChatPolicy(complete, model="root"), sub, sandbox_factory(sandbox), **kw)


@pytest.fixture(params=["sync", "async"])
def drive(request):
    """Run an engine synchronously or asynchronously: every test below runs both ways."""

    def run(engine, query, context=None, **kw):
        if request.param == "sync":
            return engine.run(query, context, **kw)
        return asyncio.run(engine.arun(query, context, **kw))

    return run


def repl(code):
    return f"```repl\n{code}\n```"


def test_final_from_code_over_real_context(drive):
    complete = script(repl("n = len(context)\nprint(n)"), repl("FINAL(f'length {n}')"))
    result = drive(engine_for(complete, sandbox="local"), "How long?", "x" * 12345)
    assert result.finish_reason == "final"
    assert result.response == "length 12345"
    assert result.trajectory[0]["output"] == ["12345\n"]
    assert "x" * 1000 not in str(complete.seen)


def test_max_iterations_ends_through_extract(drive):
    complete = script(*[repl("print('working')")] * 5, extract="best guess")
    result = drive(engine_for(complete, limits=Limits(max_iterations=3)), "q", "ctx")
    assert result.finish_reason == "max_iterations"
    assert result.response == "best guess"
    assert result.iterations == 3


def test_max_llm_calls_refuses_and_ends(drive):
    calls = []
    sub = CallableSubModel(lambda p: calls.append(p) or "ok", name="sub")
    code = "r = [llm_query(str(i)) for i in range(3)]\nprint(r)"
    complete = script(repl(code), repl("FINAL('too late')"), extract="extracted")
    result = drive(engine_for(complete, sub, limits=Limits(max_llm_calls=2)), "q", "ctx")
    assert len(calls) == 2
    assert "budget exhausted" in result.trajectory[0]["output"][0]
    assert result.finish_reason == "max_llm_calls"
    assert result.response == "extracted"


def test_batch_reserves_budget_before_starting(drive):
    calls = []
    sub = CallableSubModel(lambda p: calls.append(p) or "ok", name="sub")
    complete = script(repl("print(llm_query_batched([str(i) for i in range(10)]))"))
    result = drive(engine_for(complete, sub, limits=Limits(max_llm_calls=5, max_iterations=2)), "q", "c")
    assert calls == []
    assert result.trajectory[0]["output"][0].count("budget exhausted") == 10


def test_max_time(drive):
    complete = script(*[repl("import time; time.sleep(0.3)")] * 20)
    result = drive(engine_for(complete, limits=Limits(max_time=0.5)), "q", "c")
    assert result.finish_reason == "max_time"
    assert result.iterations < 20


@pytest.mark.parametrize(
    ("limits", "usage", "reason"),
    [
        (Limits(max_tokens=250), Usage(1, 100, 50), "max_tokens"),
        (Limits(max_cost=0.25), Usage(1, 1, 1, cost=0.1), "max_cost"),
    ],
)
def test_token_and_cost_limits(drive, limits, usage, reason):
    def complete(messages):
        return Completion(repl("print(1)"), usage, "root")

    result = drive(engine_for(complete, limits=limits), "q", "c")
    assert result.finish_reason == reason
    assert result.usage["root"].calls >= 2


def test_crashing_sandbox_keeps_trajectory(drive):
    complete = script(repl("x = 41\nprint('before')"), repl("import os; os._exit(3)"), extract="from history")
    result = drive(engine_for(complete, sandbox="local"), "q", "c")
    assert result.finish_reason == "sandbox_error"
    assert result.trajectory[0]["output"] == ["before\n"]
    assert "sandbox" in " ".join(result.steps[1].notes).lower()
    assert result.response == "from history"


@pytest.mark.parametrize(
    "bad",
    ["", None, "```bash\nls\n```", "I think so.", "```repl\n\n```", "```repl\ndef f(:\n```"],
)
def test_malformed_replies_become_notes(drive, bad):
    complete = script(bad if bad is not None else (lambda m: None), repl("FINAL('recovered')"))
    result = drive(engine_for(complete), "q", "c")
    assert result.finish_reason == "final"
    assert result.response == "recovered"
    second_request = complete.seen[1]
    feedback = second_request[-2]["content"] + second_request[-1]["content"]
    assert "[Error]" in feedback or "SyntaxError" in feedback


def test_text_final_is_ignored_when_code_ran(drive):
    invented = repl("print(len(context))") + "\nOutput: 3\nFINAL(3)"
    complete = script(invented, repl("FINAL('after seeing output')"))
    result = drive(engine_for(complete), "q", "abcd")
    assert result.response == "after seeing output"
    assert "Output: 3" not in str(complete.seen[1])


def test_text_final_without_code_is_accepted_with_nested_parens(drive):
    complete = script("The answer is FINAL(f(g(1)) and (2))")
    result = drive(engine_for(complete), "q", "c")
    assert result.finish_reason == "final"
    assert result.response == "f(g(1)) and (2)"


def test_final_var_in_text_reads_the_repl(drive):
    complete = script(repl("answer = 'from the variable'"), "Done. FINAL_VAR(answer)")
    result = drive(engine_for(complete), "q", "c")
    assert result.response == "from the variable"


def test_failed_sub_slot_is_an_error_string_and_others_survive(drive):
    def flaky(prompt):
        if prompt == "bad":
            raise RuntimeError("provider exploded")
        return prompt.upper()

    complete = script(repl("r = llm_query_batched(['a', 'bad', 'c'])\nprint(r)\nFINAL(r)"))
    result = drive(engine_for(complete, CallableSubModel(flaky, name="sub")), "q", "c")
    assert result.answer[0] == "A" and result.answer[2] == "C"
    assert result.answer[1].startswith("[Error]") and "provider exploded" in result.answer[1]


def test_depth_two_runs_a_child_in_its_own_sandbox(drive):
    def root_or_child(messages):
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if "CHILD-TASK" in str(messages) and "rlm_query('CHILD" not in str(messages):
            return repl("import os\nFINAL('child saw ' + context.split(':')[1].strip() + ' pid ' + str(os.getpid()))")
        if turn == 0:
            return repl("import os\nr = rlm_query('CHILD-TASK: 42')\nprint(r, os.getpid())\nFINAL(r)")
        return repl("FINAL('unexpected')")

    events = []
    engine = engine_for(root_or_child, sandbox="local", limits=Limits(max_depth=2), observers=[events.append])
    result = drive(engine, "q", "c")
    assert result.response.startswith("child saw 42")
    starts = [e for e in events if isinstance(e, RunStarted)]
    assert sorted(e.depth for e in starts) == [0, 1]
    assert any(isinstance(e, SubCall) and e.kind == "rlm" for e in events)


def test_rlm_query_at_max_depth_is_llm_query(drive):
    complete = script(repl("FINAL(rlm_query('hello'))"))
    result = drive(engine_for(complete, limits=Limits(max_depth=1)), "q", "c")
    assert result.response == "sub:hello"


def test_events_trace_the_run(drive):
    events = []
    complete = script(repl("print(llm_query('hi'))"), repl("FINAL('done')"))
    drive(engine_for(complete, observers=[events.append]), "q", "c")
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    assert kinds.count("RootStep") == 2 and "SubCall" in kinds and kinds.count("CodeExecuted") == 2
    assert isinstance(events[-1], RunFinished) and events[-1].result.response == "done"
    assert next(e for e in events if isinstance(e, CodeExecuted)).result.stdout == "sub:hi\n"


def _independent_script(messages):
    turn = sum(1 for m in messages if m["role"] == "assistant")
    if turn == 0:
        return repl("import time\ntime.sleep(0.05)\nprint('I hold', context)")
    return repl("FINAL(context)")


def test_sixteen_concurrent_runs_in_threads():
    engine = engine_for(_independent_script, sandbox="local")
    results = {}

    def one(i):
        results[i] = engine.run("q", f"ctx-{i}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == list(range(16))
    for i, result in results.items():
        assert result.response == f"ctx-{i}"
        assert result.trajectory[0]["output"] == [f"I hold ctx-{i}\n"]


async def test_sixteen_concurrent_runs_in_tasks():
    engine = engine_for(_independent_script, sandbox="local")
    results = await asyncio.gather(*(engine.arun("q", f"ctx-{i}") for i in range(16)))
    for i, result in enumerate(results):
        assert result.response == f"ctx-{i}"
        assert result.trajectory[0]["output"] == [f"I hold ctx-{i}\n"]


async def test_sync_run_inside_a_running_event_loop():
    """As in Jupyter: a sync call while a loop is running in this thread."""
    complete = script(repl("FINAL(llm_query('x'))"))
    result = engine_for(complete, sandbox="local").run("q", "c")
    assert result.response == "sub:x"


async def test_async_sub_calls_run_concurrently_on_the_loop():
    in_flight, peak = 0, 0

    async def slow(prompt):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.2)
        in_flight -= 1
        return prompt

    complete = script(repl("FINAL(llm_query_batched([str(i) for i in range(20)]))"))
    result = await engine_for(complete, CallableSubModel(slow, name="slow"), sandbox="local").arun("q", "c")
    assert result.answer == [str(i) for i in range(20)]
    assert peak > 1  # the slots overlapped on the loop


def test_reserved_tool_names_are_refused():
    from rlm_plugins.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="reserved"):
        engine_for(script(), tools={"llm_query": print})


def test_root_requests_stay_bounded_over_a_long_run_on_a_50mb_context():
    """30 iterations that each print 10k characters: no root request ever passes 60k characters."""
    sizes = []

    def complete(messages):
        sizes.append(sum(len(m["content"]) for m in messages))
        return repl("print(context[:20000])")

    context = "y" * 50_000_000
    result = engine_for(complete, limits=Limits(max_iterations=30)).run("q", context)
    assert result.iterations == 30 and len(sizes) == 32  # 30 turns, the extract, and its retry (it replied code)
    assert max(sizes) < 60_000
