"""`dspy.History` inputs and REPLs kept across calls: `session=RLMSession()` and `persistent=True`.

A History goes into the REPL as its list of messages, never wholesale into the root prompt. A session keeps one
REPL across calls; a persistent module keeps one per conversation, so a chat loop keeps its variables while the
examples of `dspy.Evaluate` (threads over one module) and `BootstrapFewShot` (copies of it) never see each other's.
"""

from __future__ import annotations

import threading

import dspy
import pytest

from rlm_plugins.dspy import RLM, RLMSession
from rlm_plugins.dspy.policy import HISTORY_DESC
from rlm_plugins.errors import ConfigurationError, SessionExpiredError
from tests.unit_tests.dspy._scripted import ScriptedLM, echo_sub

CHAT = "question, history: dspy.History -> answer"

REMEMBER = "notes = globals().get('notes', []) + [question]\nprint('notes', notes)\nSUBMIT(answer=str(len(notes)))"
"""Code that counts the calls this REPL has seen: 1 in a fresh REPL, n on the n-th call of a kept one."""


def remembering_root() -> ScriptedLM:
    return ScriptedLM(lambda messages: {"reasoning": "count the calls this REPL saw", "code": REMEMBER})


@pytest.fixture(params=["inprocess", "local"])
def sandbox(request):
    return request.param


def test_a_history_input_is_a_repl_list_and_stays_out_of_the_root_prompt(call, sandbox):
    secret = "SECRET-TAIL-" + "x" * 50
    history = dspy.History(messages=[{"question": f"q{i}", "answer": "a" * 400} for i in range(20)])
    history.messages.append({"question": "last", "answer": secret})
    code = "SUBMIT(answer=f'{type(history).__name__}:{len(history)}:{history[-1][\"answer\"][:11]}')"
    lm = ScriptedLM(lambda messages: {"reasoning": "read it in the REPL", "code": code})
    rlm = RLM(CHAT, sandbox=sandbox, sub_lm=echo_sub())
    with dspy.context(lm=lm):
        pred = call(rlm, question="what did I say last?", history=history)
    assert pred.answer == "list:21:SECRET-TAIL"
    prompt = "\n".join(message["content"] for message in lm.calls[0])
    assert secret not in prompt, "the conversation must not be put into the root prompt wholesale"
    assert "Variable: `history` (access it in your code)" in prompt and HISTORY_DESC in prompt


def test_a_session_keeps_the_repl_across_calls(call, sandbox):
    rlm = RLM("question -> answer", sandbox=sandbox, sub_lm=echo_sub())
    with dspy.context(lm=remembering_root()), RLMSession() as chat:
        answers = [call(rlm, question=q, session=chat).answer for q in ("a", "b", "c")]
        assert chat.turns == 3
        alone = call(rlm, question="d").answer
    assert answers == ["1", "2", "3"]
    assert alone == "1", "a call without the session starts in a fresh REPL"


def test_a_closed_session_refuses_further_calls(call):
    rlm = RLM("question -> answer", sandbox="inprocess", sub_lm=echo_sub())
    chat = RLMSession()
    with dspy.context(lm=remembering_root()):
        call(rlm, question="a", session=chat)
        chat.close()
        with pytest.raises(SessionExpiredError, match="Start a new session"):
            call(rlm, question="b", session=chat)


def test_a_persistent_module_keeps_one_repl_per_conversation(call, sandbox):
    rlm = RLM(CHAT, sandbox=sandbox, sub_lm=echo_sub(), persistent=True)
    assert rlm.persistent
    history, answers = dspy.History(messages=[]), []
    with dspy.context(lm=remembering_root()):
        for question in ("a", "b", "c"):
            pred = call(rlm, question=question, history=history)
            answers.append(pred.answer)
            history.messages.append({"question": question, **pred})
        other = call(rlm, question="z", history=dspy.History(messages=[{"question": "y", "answer": "9"}]))
        rebuilt = dspy.History(messages=[dict(m) for m in history.messages])
        fourth = call(rlm, question="d", history=rebuilt)
    rlm.close()
    assert answers == ["1", "2", "3"]
    assert other.answer == "1", "another conversation starts in a fresh REPL"
    assert fourth.answer == "4", "a history with the same turns continues, whatever object carries it"


def test_close_releases_the_kept_repls(call):
    rlm = RLM(CHAT, sandbox="inprocess", sub_lm=echo_sub(), persistent=True)
    with dspy.context(lm=remembering_root()):
        first = call(rlm, question="a", history=dspy.History(messages=[]))
        history = dspy.History(messages=[{"question": "a", **first}])
        rlm.close()
        assert call(rlm, question="b", history=history).answer == "1"
    rlm.close()


def test_persistent_needs_a_history_field():
    with pytest.raises(ConfigurationError, match=r"dspy\.History input field.*session=RLMSession\(\)"):
        RLM("question -> answer", persistent=True)


def test_copies_of_a_persistent_module_share_no_repl():
    """Optimizers copy modules with `deepcopy()`; a copy starts with no conversations."""
    rlm = RLM(CHAT, sandbox="inprocess", sub_lm=echo_sub(), persistent=True)
    with dspy.context(lm=remembering_root()):
        first = rlm(question="a", history=dspy.History(messages=[]))
        history = dspy.History(messages=[{"question": "a", **first}])
        copied = rlm.deepcopy()
        assert copied(question="b", history=history).answer == "1"
        assert rlm(question="b", history=history).answer == "2"
    rlm.close()


def dataset(n: int) -> list[dspy.Example]:
    """Examples whose histories are all alike (empty) or repeated: only a shared REPL could make answers differ."""
    histories = [dspy.History(messages=[]), dspy.History(messages=[{"question": "hi", "answer": "1"}])]
    return [
        dspy.Example(question=f"q{i}", history=histories[i % 2], answer="1").with_inputs("question", "history")
        for i in range(n)
    ]


def test_evaluate_threads_never_share_repl_state(sandbox):
    rlm = RLM(CHAT, sandbox=sandbox, sub_lm=echo_sub(), persistent=True)
    seen, lock = [], threading.Lock()

    def metric(example, pred, trace=None):
        with lock:
            seen.append(pred.answer)
        return pred.answer == "1"

    with dspy.context(lm=remembering_root()):
        result = dspy.Evaluate(devset=dataset(8), metric=metric, num_threads=3, display_progress=False)(rlm)
    rlm.close()
    assert seen == ["1"] * 8
    assert result.score == 100.0


def test_bootstrap_few_shot_never_shares_repl_state():
    rlm = RLM(CHAT, sandbox="inprocess", sub_lm=echo_sub(), persistent=True)
    seen = []

    def metric(example, pred, trace=None):
        seen.append(pred.answer)
        return pred.answer == "1"

    optimizer = dspy.BootstrapFewShot(metric=metric, max_bootstrapped_demos=4, max_labeled_demos=0, max_rounds=1)
    with dspy.context(lm=remembering_root()):
        compiled = optimizer.compile(rlm, trainset=dataset(6))
        assert compiled(question="again", history=dspy.History(messages=[])).answer == "1"
    assert len(seen) >= 4 and set(seen) == {"1"}


def test_gepa_never_shares_repl_state():
    """GEPA evaluates copies of the program on minibatches from threads: every call starts in a fresh REPL."""
    rlm = RLM(CHAT, sandbox="inprocess", sub_lm=echo_sub(), persistent=True)
    seen, lock = [], threading.Lock()

    def metric(gold, pred, trace=None, pred_name=None, pred_trace=None):
        with lock:
            seen.append(pred.answer)
        ok = pred.answer == "1"
        return dspy.Prediction(score=float(ok), feedback="Correct." if ok else f"got {pred.answer}")

    reflection = ScriptedLM(lambda messages: '{"new_instruction": "Count the calls this REPL saw."}', model="reflect")
    optimizer = dspy.GEPA(
        metric=metric, reflection_lm=reflection, max_metric_calls=16, reflection_minibatch_size=2, num_threads=2
    )
    with dspy.context(lm=remembering_root()):
        optimizer.compile(rlm, trainset=dataset(4), valset=dataset(4))
    assert len(seen) >= 8 and set(seen) == {"1"}
