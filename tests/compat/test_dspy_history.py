"""A `dspy.History` input, side by side: dspy 3.4's `dspy.RLM` hands the object to its interpreter (which
`LocalInterpreter` cannot send), ours loads its messages into the REPL as a list under the field's name."""

from __future__ import annotations

import dspy
import pytest
from dspy.primitives.code_interpreter import CodeInterpreterError
from dspy.primitives.local_interpreter import LocalInterpreter

from rlm_plugins.dspy import RLM
from tests.unit_tests.dspy._scripted import ScriptedLM, echo_sub

SIGNATURE = "question, history: dspy.History -> answer"
CODE = "SUBMIT(answer=f'{type(history).__name__} {len(history)} {history[0][\"answer\"]}')"


def history() -> dspy.History:
    return dspy.History(messages=[{"question": "a", "answer": "b"}, {"question": "c", "answer": "d"}])


def test_dspy_rlm_cannot_send_a_history_to_its_local_interpreter():
    lm = ScriptedLM(lambda messages: {"reasoning": "read it", "code": CODE})
    rlm = dspy.RLM(SIGNATURE, sub_lm=echo_sub(), interpreter_factory=LocalInterpreter)
    with dspy.context(lm=lm), pytest.raises(CodeInterpreterError, match="not JSON serializable"):
        rlm(question="which?", history=history())


@pytest.mark.parametrize("sandbox", ["local", "inprocess"])
def test_ours_loads_the_messages_as_a_list(sandbox, call):
    lm = ScriptedLM(lambda messages: {"reasoning": "read it", "code": CODE})
    rlm = RLM(SIGNATURE, sub_lm=echo_sub(), sandbox=sandbox)
    with dspy.context(lm=lm):
        assert call(rlm, question="which?", history=history()).answer == "list 2 b"
