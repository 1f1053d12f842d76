from __future__ import annotations

import asyncio
import threading
import time

import pytest

from rlm_plugins.core.chat_policy import COMPACTED_HEADER, ChatPolicy
from rlm_plugins.core.parsing import FinalVar
from rlm_plugins.core.ports import CodeRun, Completion, Policy, RunState, Step, Usage
from rlm_plugins.core.prompts import describe_value
from rlm_plugins.errors import ConfigurationError
from rlm_plugins.repl.base import ExecResult

NEEDLE = "NEEDLE-THE-ROOT-MUST-NOT-SEE"


class Script:
    """A chat model that replies from a list and records every request it gets."""

    def __init__(self, *replies: Completion | str | None) -> None:
        self.replies = list(replies)
        self.requests: list[list[dict]] = []
        self.threads: list[int] = []

    def __call__(self, messages: list[dict]) -> Completion | str | None:
        self.requests.append(messages)
        self.threads.append(threading.get_ident())
        return self.replies.pop(0)

    async def acall(self, messages: list[dict]) -> Completion | str | None:
        await asyncio.sleep(0)
        return self(messages)


def make_state(history: list[Step] | None = None, iteration: int = 1, **overrides: object) -> RunState:
    values: dict = {
        "query": "Find the magic number.",
        "variables": [describe_value("context", "filler " * 200 + NEEDLE)],
        "tools": [],
        "history": history or [],
        "iteration": iteration,
        "max_iterations": 30,
    }
    values.update(overrides)
    return RunState(**values)


def step(iteration: int, response: str, stdout: str = "", notes: list[str] | None = None) -> Step:
    code = response.split("```repl\n", 1)[1].split("\n```", 1)[0] if "```repl\n" in response else ""
    runs = [CodeRun(code, ExecResult(stdout=stdout))] if code else []
    return Step(iteration, "", response, runs=runs, notes=notes or [])


def total_chars(messages: list[dict]) -> int:
    return sum(len(message["content"]) for message in messages)


def test_chat_policy_is_a_policy_and_validates_its_arguments():
    assert isinstance(ChatPolicy(Script()), Policy)
    with pytest.raises(ConfigurationError, match="max_history_chars"):
        ChatPolicy(Script(), max_history_chars=10)
    with pytest.raises(ConfigurationError, match="keep_recent_steps"):
        ChatPolicy(Script(), keep_recent_steps=-1)
    with pytest.raises(ConfigurationError, match="complete"):
        ChatPolicy("gpt-4o")  # type: ignore[arg-type]


def test_first_turn_messages_hold_metadata_not_the_context():
    messages = ChatPolicy(Script()).build_messages(make_state())
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "`context`: str, 1,428 characters" in messages[0]["content"]
    assert "Find the magic number." in messages[1]["content"]
    assert "Turn 1 of 30" in messages[1]["content"]
    assert all(NEEDLE not in m["content"] for m in messages)


def assert_first_action(script: Script, action) -> None:
    assert action.code == ["print(len(context))"]
    assert action.reasoning == "Let me measure it."
    assert not action.has_final
    assert "999" in action.response
    assert action.usage == Usage(calls=1, input_tokens=10, output_tokens=5)
    assert action.model == "root-model"
    assert action.prompt == script.requests[0]


FIRST_REPLY = Completion(
    "Let me measure it.\n```repl\nprint(len(context))\n```\nOutput: 999\nFINAL(999)",
    Usage(calls=1, input_tokens=10, output_tokens=5),
)


def test_act_parses_code_and_keeps_the_raw_response():
    script = Script(FIRST_REPLY)
    action = ChatPolicy(script, model="root-model").act(make_state())
    assert_first_action(script, action)
    assert len(action.notes) == 1 and "ignored" in action.notes[0]


async def test_aact_parses_code_and_keeps_the_raw_response():
    script = Script(FIRST_REPLY)
    action = await ChatPolicy(script, script.acall, model="root-model").aact(make_state())
    assert_first_action(script, action)
    assert len(action.notes) == 1 and "ignored" in action.notes[0]


def test_act_text_final_without_code():
    action = ChatPolicy(Script(Completion("Done.\nFINAL_VAR(answer)", model="m2")), model="m1").act(make_state())
    assert action.code == [] and action.has_final and action.final == FinalVar("answer")
    assert action.model == "m2"


async def test_aact_text_final_without_code():
    script = Script(Completion("Done.\nFINAL_VAR(answer)", model="m2"))
    action = await ChatPolicy(script, script.acall, model="m1").aact(make_state())
    assert action.code == [] and action.has_final and action.final == FinalVar("answer")
    assert action.model == "m2"


def test_act_empty_reply_gets_a_note():
    action = ChatPolicy(Script(None)).act(make_state())
    assert action.code == [] and not action.has_final
    assert action.notes and "empty" in action.notes[0]


async def test_aact_empty_reply_gets_a_note():
    script = Script(None)
    action = await ChatPolicy(script, script.acall).aact(make_state())
    assert action.code == [] and not action.has_final
    assert action.notes and "empty" in action.notes[0]


async def test_aact_without_acomplete_runs_complete_off_the_event_loop():
    def slow(messages: list[dict]) -> str:
        time.sleep(0.3)
        return "```repl\nprint(1)\n```"

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    action = await ChatPolicy(slow).aact(make_state())
    task.cancel()
    assert action.code == ["print(1)"]
    assert ticks >= 10


async def test_aact_without_acomplete_uses_a_worker_thread():
    script = Script("```repl\nprint(1)\n```")
    await ChatPolicy(script).aact(make_state())
    assert script.threads == [script.threads[0]] and script.threads[0] != threading.get_ident()


def history_of_two() -> list[Step]:
    return [
        step(1, "Look.\n```repl\nprint(context[:5])\n```\nREPL output:\nfake!", stdout="fille"),
        step(2, "Hmm, I forgot code.", notes=["[Error] Your reply had no ```repl block, so nothing ran."]),
    ]


def assert_history_messages(messages: list[dict], closing: str) -> None:
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "Turn 1 of 30" in messages[1]["content"]
    assert messages[2]["content"] == "Look.\n```repl\nprint(context[:5])\n```"
    assert "Output:\nfille" in messages[3]["content"] and "fake!" not in messages[3]["content"]
    assert messages[4]["content"] == "Hmm, I forgot code."
    assert messages[5]["content"].startswith("[Error] Your reply had no ```repl block")
    assert messages[5]["content"].endswith(closing)


def test_build_messages_replays_history_with_cleaned_replies_and_real_output():
    messages = ChatPolicy(Script()).build_messages(make_state(history_of_two(), iteration=3))
    assert_history_messages(messages, "end the run once the output above supports an answer.")
    assert "Turn 3 of 30" in messages[5]["content"]


def test_extract_sends_history_and_the_extract_prompt():
    script = Script(Completion("7", model="x"))
    completion = ChatPolicy(script).extract(make_state(history_of_two(), iteration=2))
    assert completion == Completion("7", None, "x")
    assert_history_messages(script.requests[0], "Reply with the answer only: no code, no preamble.")


async def test_aextract_sends_history_and_the_extract_prompt():
    script = Script(Completion("7", model="x"))
    completion = await ChatPolicy(script, script.acall).aextract(make_state(history_of_two(), iteration=2))
    assert completion == Completion("7", None, "x")
    assert_history_messages(script.requests[0], "Reply with the answer only: no code, no preamble.")


async def test_aextract_without_acomplete_and_plain_str_reply():
    completion = await ChatPolicy(Script("seven"), model="root").aextract(make_state())
    assert completion == Completion("seven", None, "root")


def long_run_history(count: int, size: int = 10_000) -> list[Step]:
    history = []
    for i in range(1, count + 1):
        response = f"Step {i}.\n```repl\nchunk_{i} = context[{i} * 1000:{i + 1} * 1000]\nprint(chunk_{i})\n```"
        history.append(step(i, response, stdout=f"out-{i} " + "z" * size))
    return history


def test_every_request_stays_small_over_a_long_run_with_a_50mb_context():
    context = "x" * 50_000_000 + NEEDLE
    variables = [describe_value("context", context)]
    policy = ChatPolicy(Script(), max_history_chars=40_000, keep_recent_steps=4)
    history = long_run_history(30)
    for done in range(31):
        state = make_state(history[:done], iteration=done + 1, variables=variables, max_iterations=31)
        messages = policy.build_messages(state)
        assert total_chars(messages) < 60_000
        assert all(NEEDLE not in m["content"] for m in messages)
    assert COMPACTED_HEADER in messages[1]["content"]
    assert (
        "- turn 26: ran `chunk_26 = context[26 * 1000:27 * 1000] | print(chunk_26)` -> out-26 zzz"
        in (messages[1]["content"])
    )
    assert len(messages) == 2 + 2 * 4
    assert messages[-2]["content"].startswith("Step 30.")
    assert "out-30 zzzz" in messages[-1]["content"]
    assert "[... " in messages[-1]["content"]


def test_small_history_is_not_compacted():
    messages = ChatPolicy(Script()).build_messages(make_state(long_run_history(3, 5_000), iteration=4))
    assert all(COMPACTED_HEADER not in m["content"] for m in messages)
    assert len(messages) == 2 + 2 * 3
    assert messages[3]["content"].startswith("```repl\nchunk_1")
    kept = "Output:\nout-1 " + "z" * 5_000 + "\n\nQuery: Find the magic number.\n\nTurn 2 of 30."
    assert kept in messages[3]["content"]


def test_compaction_with_no_recent_steps_and_a_tiny_budget():
    policy = ChatPolicy(Script(), max_history_chars=1_000, keep_recent_steps=0)
    messages = policy.build_messages(make_state(long_run_history(30), iteration=31, max_iterations=40))
    assert [m["role"] for m in messages] == ["system", "user"]
    history_part = messages[1]["content"].split(COMPACTED_HEADER)[1]
    assert len(history_part) < 1_000
    assert "earlier turns left out" in history_part and "- turn 30:" in history_part
    assert "Turn 31 of 40" in messages[1]["content"]
