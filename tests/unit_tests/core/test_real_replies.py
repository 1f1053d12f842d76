"""Replies a small real model (Qwen2.5-Coder-0.5B over llama.cpp) wrote, and what the engine makes of them.

Each reply below is the text quoted in issue 18; the engine runs it in a real sandbox over a real context.
"""

from __future__ import annotations

import pytest

from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.final_checks import BLIND_LITERAL, PREMATURE
from rlm_plugins.core.parsing import parse_reply
from rlm_plugins.core.prompts import SYSTEM_TEMPLATE
from rlm_plugins.errors import ConfigurationError
from tests.unit_tests.core.test_engine import engine_for, repl, script

CONTEXT = "\n".join(f"line {i}: filler text" for i in range(2_000)) + "\nthe secret code is 777\n"
INVENTED = repl("print(context)") + "\n" + repl("FINAL(\"The secret code is '123456'\")")
COMPUTED = repl("import re\ncode = re.search(r'secret code is (\\d+)', context).group(1)\nprint(code)")


def notes(result):
    return " ".join(note for step in result.steps for note in step.notes)


def test_first_reply_final_with_an_invented_literal_is_refused(drive):
    complete = script(INVENTED, COMPUTED, repl("FINAL(code)"))
    result = drive(engine_for(complete), "What is the secret code?", CONTEXT)
    assert result.finish_reason == "final"
    assert result.response == "777"
    assert result.iterations == 3
    assert PREMATURE.split(":")[0] in notes(result)


def test_premature_check_can_be_turned_off(drive):
    complete = script(INVENTED)
    result = drive(engine_for(complete, refuse_premature_final=False), "What is the secret code?", CONTEXT)
    assert result.finish_reason == "final"
    assert result.response == "The secret code is '123456'"


def test_a_computed_first_reply_final_is_accepted(drive):
    complete = script(repl("FINAL(len(context))"))
    result = drive(engine_for(complete), "How long?", CONTEXT)
    assert (result.finish_reason, result.answer) == ("final", len(CONTEXT))


def test_a_literal_final_after_unread_output_of_the_same_reply_is_refused(drive):
    later = repl("print(context[-40:])") + "\n" + repl("FINAL('123456')")
    complete = script(repl("print(len(context))"), later, COMPUTED + "\n" + repl("FINAL(code)"))
    result = drive(engine_for(complete), "What is the secret code?", CONTEXT)
    assert result.response == "777"
    assert BLIND_LITERAL.split("{")[0] in notes(result)
    assert "'123456'" in result.steps[1].notes[0]


def test_a_literal_final_in_the_last_turn_is_accepted(drive):
    complete = script(repl("FINAL('777')"))
    result = drive(engine_for(complete, limits=_limits(1)), "What is the secret code?", CONTEXT)
    assert result.finish_reason == "final"


def test_a_literal_final_is_fine_when_the_prompt_showed_all_the_data(drive):
    complete = script(repl("FINAL('abcd has 4 letters')"))
    result = drive(engine_for(complete), "How long?", "abcd")
    assert result.finish_reason == "final"


def test_a_signature_written_as_code_gets_a_note_and_does_not_run():
    reply = parse_reply("```repl\nllm_query(prompt: str) -> str\n```")
    assert reply.code == []
    assert len(reply.notes) == 1
    assert "signature" in reply.notes[0] and "answer = llm_query(" in reply.notes[0]


def test_a_def_signature_among_runnable_code_is_dropped_alone():
    reply = parse_reply("```repl\nprint(1)\n```\n```repl\ndef llm_query_batched(prompts: list[str]) -> list[str]:\n```")
    assert reply.code == ["print(1)"]
    assert "llm_query_batched" in reply.notes[0]


def test_signature_reply_runs_nothing_in_the_engine(drive):
    complete = script("```repl\nllm_query(prompt: str) -> str\n```", COMPUTED, repl("FINAL(code)"))
    result = drive(engine_for(complete), "What is the secret code?", CONTEXT)
    assert result.response == "777"
    assert result.steps[0].runs == []
    assert "signature" in result.steps[0].notes[0]


@pytest.mark.parametrize("text", ["Final(answer): 777", "**Final answer:** 777", "final: 777"])
def test_final_written_as_text_gets_a_note(text):
    reply = parse_reply(text)
    assert not reply.has_final
    assert any("is not an answer" in note and "FINAL(value)" in note for note in reply.notes)


def test_prose_mentioning_a_final_step_is_not_flagged():
    reply = parse_reply("The final step is to count.\n```repl\nprint(1)\n```")
    assert reply.notes == []


def test_a_reply_echoing_the_instructions_gets_a_note():
    instructions = SYSTEM_TEMPLATE
    echoed = "\n".join(line for line in instructions.splitlines()[8:16])
    reply = parse_reply(echoed + "\n```repl\nprint(len(context))\n```", instructions=instructions)
    assert reply.code == ["print(len(context))"]
    assert any("repeated" in note and "instructions" in note for note in reply.notes)
    assert not any("repeated" in n for n in parse_reply("```repl\nprint(1)\n```", instructions=instructions).notes)


def test_extract_never_returns_a_raw_code_fence(drive):
    fence = "```repl\nllm_query(prompt: str) -> str\n```"
    complete = script(repl("print(len(context))"), extract=fence)
    result = drive(engine_for(complete, limits=_limits(1)), "What is the secret code?", CONTEXT)
    assert result.finish_reason == "max_iterations"
    assert "```" not in result.response
    assert result.response == ""
    retry = complete.seen[-1]
    assert retry[-2] == {"role": "assistant", "content": fence}
    assert "no code runs any more" in retry[-1]["content"]


def test_extract_retry_answer_is_used_and_both_calls_are_counted(drive):
    replies = iter(["```python\nFINAL_VAR('code')\n```", "777"])

    def complete(messages):
        if "no more code will run" in str(messages):
            return next(replies)
        return repl("print(len(context))")

    result = drive(engine_for(complete, limits=_limits(1)), "What is the secret code?", CONTEXT)
    assert result.response == "777"
    assert result.usage["root"].calls == 3


@pytest.mark.parametrize(
    ("reply", "answer"),
    [
        ('```json\n{"answer": 7}\n```', '{"answer": 7}'),
        ("```repl\nFINAL('seven')\n```", "seven"),
        ("The code is 777.\n```repl\nprint(1)\n```", "The code is 777."),
    ],
)
def test_extract_keeps_data_blocks_and_literal_answers(reply, answer, drive):
    complete = script(repl("print(len(context))"), extract=reply)
    result = drive(engine_for(complete, limits=_limits(1)), "q", CONTEXT)
    assert result.response == answer


def test_a_model_without_a_system_role_still_gets_the_instructions():
    from rlm_plugins.core.ports import RunState, Step

    seen = []
    policy = ChatPolicy(lambda messages: seen.append(messages) or "```repl\nprint(1)\n```", system_role="user")
    state = RunState("Count the lines.", [], [], [], 1, 5)
    policy.act(state)
    state.history.append(Step(1, "", "```repl\nprint(1)\n```"))
    state.iteration = 2
    policy.act(state)
    for messages in seen:
        assert messages[0]["role"] == "user"
        assert all(m["role"] in ("user", "assistant") for m in messages)
        assert messages[0]["content"].startswith("You are a Recursive Language Model")
        assert "Count the lines." in messages[0]["content"]
    with pytest.raises(ConfigurationError, match="system_role"):
        ChatPolicy(lambda m: "", system_role="tool")


def _limits(iterations):
    from rlm_plugins.core.budget import Limits

    return Limits(max_iterations=iterations)


def test_an_echo_of_the_system_prompt_gets_a_note_through_the_chat_policy(drive):
    def echo(messages):
        if sum(m["role"] == "assistant" for m in messages):
            return COMPUTED + "\n" + repl("FINAL(code)")
        return "\n".join(messages[0]["content"].splitlines()[-14:-4])

    result = drive(engine_for(script(echo, echo, echo)), "What is the secret code?", CONTEXT)
    assert result.response == "777"
    (note,) = result.steps[0].notes
    assert "repeated" in note and "instructions" in note


def test_quoting_the_data_preview_is_not_an_echo():
    from rlm_plugins.core.ports import ContextInfo, RunState
    from rlm_plugins.core.prompts import system_prompt

    preview = "\n".join(f"Record {i:05d} | user 3 | 2024-01-02 | The customer was charged twice." for i in range(9))
    info = ContextInfo("context", "str", 90_000, None, preview)
    instructions = system_prompt(RunState("q", [info], [], [], 1, 5))
    quoted = "The records look like:\n" + "\n".join(preview.splitlines()[:5]) + "\n```repl\nprint(1)\n```"
    assert parse_reply(quoted, instructions=instructions).notes == []
