"""The native `dspy.RLM` on our sandboxes: a 10 MB context, a fan-out over 100 chunks, and the right SUBMIT.

Runs on every kind that works here: `local`, `inprocess`, and `e2b` over the fake envd (the real E2B SDK in debug
mode against a loopback envd that runs the processes locally).
"""

from __future__ import annotations

import random
import re

import dspy
import pytest

from rlm_plugins.dspy import RLM, interpreter_factory
from tests.unit_tests.dspy._scripted import ScriptedLM, root

pytestmark = pytest.mark.filterwarnings("ignore:E2BSandbox uploads the driver")
CODES = ["417", "90210", "31337"]
FAN_OUT = """chunks = [context[i:i + 100_000] for i in range(0, len(context), 100_000)]
answers = llm_query_batched([f"List the NEEDLE codes in this text:\\n{c}" for c in chunks])
found = [a for a in answers if a != 'none']
print(len(chunks), found)"""


def ten_mb_context() -> str:
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "omega"]
    text = " ".join(rng.choice(words) for _ in range(1_800_000))[:10_000_000]
    for code, at in zip(CODES, (1_234_567, 5_555_555, 9_876_543), strict=True):
        text = text[:at] + f" NEEDLE-{code} " + text[at:]
    return text[:10_000_000]


def needle_sub() -> ScriptedLM:
    def answer(messages):
        found = re.findall(r"NEEDLE-(\d+)", messages[-1]["content"])
        return ",".join(found) or "none"

    return ScriptedLM(answer, model="needle-sub")


ENVD_PROBLEM = None
try:
    import tests.fakes.envd  # noqa: F401
except ImportError as exc:
    ENVD_PROBLEM = f"the fake envd cannot load here: {exc}"
E2B = pytest.param("e2b", marks=pytest.mark.skipif(ENVD_PROBLEM is not None, reason=ENVD_PROBLEM or ""))


@pytest.fixture(params=["local", "inprocess", E2B])
def factory(request):
    if request.param != "e2b":
        return interpreter_factory(request.param)
    return interpreter_factory("e2b", **request.getfixturevalue("e2b_options"))


def test_native_rlm_fans_out_over_10_mb_and_submits(factory, call):
    lm = ScriptedLM(
        root(
            ("look", "print(type(context).__name__, len(context))"),
            ("fan out", FAN_OUT),
            ("done", "SUBMIT(answer=','.join(found))"),
        )
    )
    sub = needle_sub()
    rlm = dspy.RLM("context, query -> answer", sub_lm=sub, interpreter_factory=factory, max_llm_calls=200)
    context = ten_mb_context()
    with dspy.context(lm=lm):
        pred = call(rlm, context=context, query="Which NEEDLE codes does the text hold?")
    assert pred.answer == ",".join(CODES)
    assert pred.trajectory[0]["output"] == "str 10000000"
    assert f"100 {CODES!r}" in pred.trajectory[1]["output"]
    assert len(sub.calls) == 100
    assert all(len(str(messages)) < 100_000 for messages in lm.calls), "the context never enters the root prompt"


def test_our_module_on_the_e2b_sandbox(call, request):
    if ENVD_PROBLEM:
        pytest.skip(ENVD_PROBLEM)
    options = request.getfixturevalue("e2b_options")
    lm = ScriptedLM(root(("fan out", FAN_OUT), ("done", "SUBMIT(answer=','.join(found))")))
    sub = needle_sub()
    rlm = RLM(
        "context, query -> answer",
        sub_lm=sub,
        sandbox="e2b",
        sandbox_options=options,
        max_llm_calls=200,
    )
    with dspy.context(lm=lm):
        pred = call(rlm, context=ten_mb_context(), query="Which NEEDLE codes does the text hold?")
    assert pred.answer == ",".join(CODES)
    assert len(sub.calls) == 100
