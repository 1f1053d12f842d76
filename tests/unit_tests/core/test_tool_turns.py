"""The shared tool-call mechanism: conversations as tasks, pause for external tools, resume with their results."""

from __future__ import annotations

import pytest

from rlm_plugins.core.conversation import CONVERSATION_HEADER, build_task, call_parts, fingerprint
from rlm_plugins.core.drivers import adrive, drive
from rlm_plugins.core.external_tools import CallLog, ToolCallSent, check_structured, repl_tools, tool_setup
from rlm_plugins.core.steps import Paused
from rlm_plugins.core.store import MemorySessionStore
from rlm_plugins.core.tool_turns import (
    ToolTurn,
    aload_results,
    check_conversation,
    continuation,
    load_results,
    made_calls,
    pause_hook,
    resume_turn,
    saved_pause,
    usage_delta,
)
from rlm_plugins.errors import ContinuationMismatchError
from tests.unit_tests.core._scripted import by_marker, engine, repl

ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
    },
}
SCRIPT = {"[add]": [repl("kept = 'state'\nadd(a=2)"), repl("FINAL(kept + ':' + str(list(tool_results.values())))")]}


def test_one_long_message_becomes_the_context():
    task = build_task([{"role": "system", "content": "hi"}, {"role": "user", "content": "x" * 50}], threshold=10)
    assert task.context == "x" * 50 and task.moved == 1
    assert task.query.startswith(CONVERSATION_HEADER) and "moved into the REPL as `context`" in task.query


def test_several_long_messages_become_documents_and_tool_calls_are_shown():
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "a" * 20}, {"type": "image_url"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "b" * 20},
    ]
    task = build_task(messages, threshold=15)
    assert [d["role"] for d in task.context] == ["user", "tool"]
    assert "[image_url content omitted]" in task.context[0]["content"]
    assert "called tools: f({}) [id c1]" in task.query and "[tool result for c1]" in task.query


def test_call_parts_reads_both_shapes():
    assert call_parts({"id": "1", "function": {"name": "f", "arguments": '{"a": 1}'}}) == ("f", {"a": 1}, "1")
    assert call_parts({"id": "2", "name": "g", "args": {"b": 2}}) == ("g", {"b": 2}, "2")


def test_fingerprint_changes_with_the_conversation_but_not_with_argument_spelling():
    base = [{"role": "user", "content": "hi"}]
    spaced = [{"role": "assistant", "content": None, "tool_calls": [{"id": "x", "function": {"arguments": "{ }"}}]}]
    tight = [{"role": "assistant", "content": "", "tool_calls": [{"id": "x", "function": {"arguments": "{}"}}]}]
    assert fingerprint(base + spaced) == fingerprint(base + tight)
    assert fingerprint(base) != fingerprint([{"role": "user", "content": "hi!"}])


def test_continuation_finds_our_ids_and_the_conversation_before_the_calls():
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_rlm_ab_1"}, {"id": "other"}]},
        {"role": "tool", "tool_call_id": "call_rlm_ab_1", "content": "1"},
        {"role": "tool", "tool_call_id": "other", "content": "2"},
    ]
    assert continuation(messages) == (["call_rlm_ab_1"], [{"role": "user", "content": "q"}])
    assert continuation(messages[:1]) == ([], [])


def test_parallel_false_refuses_a_second_call_before_the_pause():
    log = CallLog(parallel=False)
    tool = repl_tools([ADD], log)["add"]
    with pytest.raises(ToolCallSent, match="was sent to the caller"):
        tool(1)
    with pytest.raises(ToolCallSent, match="one tool call at a time"):
        tool(2)
    assert [c["args"] for c in log.calls] == [{"a": 1}]


def test_schema_check_reports_the_first_violation():
    schema = {"parameters": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}
    assert check_structured({"n": 1}, schema, None) == ({"n": 1}, None)
    value, problem = check_structured({"n": "one"}, schema, None)
    assert value is None and "at n: 'one' is not of type 'integer'" in problem
    assert "missing the required keys ['n']" in check_structured({}, schema, None)[1]


def test_tool_choice_none_binds_no_tool_and_required_refuses_an_early_answer():
    assert tool_setup([ADD], "none", None, CallLog()).tools == {}
    setup = tool_setup([ADD], "required", None, CallLog())
    assert "You must call one of these tools" in setup.instructions
    from rlm_plugins.repl.base import FinalAnswer

    assert "requires a call" in setup.validator(FinalAnswer(value="x"))[1]


def _engine(log: CallLog):
    setup = tool_setup([ADD], None, None, log)
    return engine(by_marker(SCRIPT), tools=setup.tools, final_validator=setup.validator), setup


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_run_pauses_for_a_tool_call_and_resumes_through_the_store(mode):
    messages = [{"role": "user", "content": "[add] two plus?"}]
    log = CallLog()
    eng, setup = _engine(log)
    turn = ToolTurn(eng.new_run(messages[0]["content"] + setup.instructions), log, conversation=fingerprint(messages))
    paused = drive(turn.run, pause_hook(log)) if mode == "sync" else await adrive(turn.run, pause_hook(log))
    assert isinstance(paused, Paused)
    store = MemorySessionStore()
    key, data = saved_pause(turn, paused, ttl=60)
    store.put(key, data, 60)
    (call,) = data["pending"]
    assert call["name"] == "add" and call["args"] == {"a": 2}
    later = [*messages, {"role": "assistant", "tool_calls": [call]}, {"role": "tool", "tool_call_id": call["id"]}]
    ids, before = continuation(later)
    assert ids == [call["id"]]
    data = store.take(key)
    with pytest.raises(ContinuationMismatchError):
        check_conversation(data, [{"role": "user", "content": "[add] something else"}])
    check_conversation(data, before)
    log2 = CallLog(made=made_calls(data))
    eng2, _ = _engine(log2)
    run, results, new = resume_turn(eng2, data, {call["id"]: "4"})
    resumed = ToolTurn(run, log2, run.budget.usage_snapshot(), results=results, new_results=new)
    if mode == "sync":
        load_results(resumed)
        result = drive(run, pause_hook(log2))
    else:
        await aload_results(resumed)
        result = await adrive(run, pause_hook(log2))
    assert result.response == "state:['4']"
    assert "The caller ran your tool calls" in run.history[0].notes[-1]
    assert sum(u.calls for u in usage_delta(resumed).values()) == 1, "only this call's root turn is counted"
