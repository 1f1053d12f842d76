"""`rlm_plugins.dspy.RLM` as a drop-in for `dspy.RLM`: construction, typed SUBMIT, extract, inputs, sub-calls, tools,
recursion and interpreter factories. Every behaviour test runs through `forward` and `aforward` (`call` fixture)."""

from __future__ import annotations

import asyncio
import os
from typing import ClassVar

import dspy
import pytest

from rlm_plugins.core.events import RunStarted
from rlm_plugins.dspy import RLM, InvalidToolsError, ReservedNameError, interpreter_factory
from rlm_plugins.dspy.signatures import CHILD_TASK
from rlm_plugins.errors import ConfigurationError
from rlm_plugins.repl.inprocess import InProcessSandbox
from tests.unit_tests.dspy._scripted import ScriptedLM, echo_sub, is_extract, iteration_of, root


def make(signature="context, query -> answer", steps=(), extract=None, **kw):
    kw.setdefault("sandbox", "inprocess")
    kw.setdefault("sub_lm", echo_sub())
    lm = ScriptedLM(root(*steps, extract=extract))
    return RLM(signature, **kw), lm


def test_predictors_and_signatures_match_dspy_rlm():
    ours = RLM("context, query -> answer: int, notes: list[str]")
    native = dspy.RLM("context, query -> answer: int, notes: list[str]")
    assert [name for name, _ in ours.named_predictors()] == ["generate_action", "extract"]
    for name in ("generate_action", "extract"):
        mine, theirs = getattr(ours, name).signature, getattr(native, name).signature
        assert list(mine.input_fields) == list(theirs.input_fields)
        assert {k: f.annotation for k, f in mine.output_fields.items()} == {
            k: f.annotation for k, f in theirs.output_fields.items()
        }
    assert set(ours.dump_state()) == {"generate_action", "extract"}
    assert "SUBMIT(answer, notes)" in ours.generate_action.signature.instructions


def lookup_tool(x: str) -> str:
    """A tool."""
    return x


def llm_query(prompt: str) -> str:
    return prompt


@pytest.mark.parametrize(
    ("kwargs", "signature", "base"),
    [
        ({"tools": {"t": lookup_tool}}, "q -> a", TypeError),
        ({"tools": [42]}, "q -> a", TypeError),
        ({"tools": [lookup_tool, lookup_tool]}, "q -> a", ValueError),
        ({"tools": [llm_query]}, "q -> a", ValueError),
        ({"tools": [dspy.Tool(lookup_tool, name="bad-name")]}, "q -> a", ValueError),
        ({"tools": [dspy.Tool(lookup_tool, name="dspy")]}, "q -> a", ValueError),
        ({}, "llm_query -> a", ValueError),
        ({}, "interpreter_factory -> a", ValueError),
        ({}, "q -> trajectory", ValueError),
        ({"tools": [lookup_tool]}, "lookup_tool -> a", ValueError),
    ],
)
def test_construction_errors_match_dspy_rlm(kwargs, signature, base):
    with pytest.raises(base) as native:
        dspy.RLM(signature, **kwargs)
    with pytest.raises(base) as ours:
        RLM(signature, **kwargs)
    assert isinstance(ours.value, ConfigurationError)
    assert isinstance(ours.value, (InvalidToolsError, ReservedNameError))
    assert str(native.value) in str(ours.value)


def test_bad_limits_and_sandbox_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="max_iterations"):
        RLM("q -> a", max_iters=0)
    with pytest.raises(ConfigurationError, match="unknown sandbox kind"):
        RLM("q -> a", sandbox="nope")
    with pytest.raises(ConfigurationError, match="not both"):
        RLM("q -> a", sandbox="local", interpreter_factory=interpreter_factory("local"))


def test_typed_submit_is_parsed_with_dspy_value_parsing(call):
    code = "SUBMIT(answer='42', tags=['a', 'b'], ok='true')"
    rlm, lm = make("context -> answer: int, tags: list[str], ok: bool", [("done", code)])
    with dspy.context(lm=lm):
        pred = call(rlm, context="c")
    assert (pred.answer, pred.tags, pred.ok) == (42, ["a", "b"], True)
    assert pred.final_reasoning == "done"
    assert pred.trajectory[-1]["output"].startswith("FINAL: ")
    assert set(pred.trajectory[0]) == {"reasoning", "code", "output"}


def test_type_error_goes_back_to_the_model_and_the_loop_continues(call):
    steps = [("try", "SUBMIT(answer='not a number')"), ("fix", "SUBMIT(answer=7)")]
    rlm, lm = make("context -> answer: int", steps)
    with dspy.context(lm=lm):
        pred = call(rlm, context="c")
    assert pred.answer == 7
    assert len(pred.trajectory) == 2
    assert "Type error in SUBMIT" in pred.trajectory[0]["output"]
    assert "Type error in SUBMIT" in lm.calls[1][-1]["content"]


def test_missing_field_goes_back_to_the_model(call):
    steps = [("half", "SUBMIT(answer=1)"), ("all", "SUBMIT(answer=1, why='because')")]
    rlm, lm = make("context -> answer: int, why: str", steps)
    with dspy.context(lm=lm):
        pred = call(rlm, context="c")
    assert (pred.answer, pred.why) == (1, "because")
    assert "missing why" in pred.trajectory[0]["output"]


def test_exhaustion_runs_extract_with_typed_outputs(call):
    rlm, lm = make("context -> answer: int", [("look", "print(len(context))")], extract={"answer": "5"}, max_iters=2)
    with dspy.context(lm=lm):
        pred = call(rlm, context="abc")
    assert pred.answer == 5
    assert pred.final_reasoning == "Extract forced final output"
    assert [step["output"] for step in pred.trajectory] == ["3", "..."]
    assert is_extract(lm.calls[-1])


class CountingSandbox(InProcessSandbox):
    loads: ClassVar[list[str]] = []

    def load(self, name, value, format=None):
        CountingSandbox.loads.append(name)
        return super().load(name, value, format)


def test_inputs_load_once_stay_out_of_the_prompt_and_reassignment_sticks(call):
    CountingSandbox.loads = []
    context = "abc" + "z" * 20_000
    steps = [
        ("shout", "context = context.upper()\nprint(context[:3])"),
        ("again", "print(context[:3], query)"),
        ("done", "SUBMIT(answer=context[:3])"),
    ]
    rlm, lm = make(steps=steps, sandbox=CountingSandbox)
    with dspy.context(lm=lm):
        pred = call(rlm, context=context, query="q?")
    assert pred.answer == "ABC"
    assert [step["output"] for step in pred.trajectory[:2]] == ["ABC", "ABC q?"]
    assert sorted(CountingSandbox.loads) == ["context", "query"]
    assert all("z" * 2_000 not in str(messages) for messages in lm.calls)


def test_sub_calls_use_the_lm_of_dspy_context_from_tool_threads(call):
    def answer(messages):
        if iteration_of(messages) or is_extract(messages):
            return root(("fan", "r = llm_query_batched(['a', 'b'])\nprint(r)"), ("done", "SUBMIT(answer=r)"))(messages)
        return f"ctx-lm:{messages[-1]['content']}"

    lm = ScriptedLM(answer)
    rlm = RLM("context -> answer: list[str]", sandbox="inprocess")
    with dspy.context(lm=lm):
        pred = call(rlm, context="c")
    assert pred.answer == ["ctx-lm:a", "ctx-lm:b"]
    rlm = RLM("context -> answer: list[str]", sandbox="inprocess", sub_lm=echo_sub("sub"))
    with dspy.context(lm=lm):
        assert call(rlm, context="c").answer == ["sub:a", "sub:b"]


async def lookup(key: str) -> str:
    """Look a key up asynchronously."""
    await asyncio.sleep(0)
    return key.upper()


def shout(text: str) -> str:
    """Shout."""
    return text.upper() + "!"


def test_sync_and_async_user_tools(call):
    steps = [("tools", "SUBMIT(answer=lookup('k') + shout('hi') + shout(text='yo'))")]
    rlm, lm = make("context -> answer", steps, tools=[lookup, shout])
    with dspy.context(lm=lm):
        assert call(rlm, context="c").answer == "KHI!YO!"
    assert "lookup(key: string)" in rlm.generate_action.signature.instructions


def test_rlm_query_runs_a_child_with_its_own_repl(call):
    def answer(messages):
        if CHILD_TASK in messages[0]["content"]:
            return {"reasoning": "child", "code": "FINAL(str(len(context)) + ' ' + str('query' in dir()))"}
        return root(("recurse", "r = rlm_query('count', context='xxxx')\nprint(r)"), ("done", "SUBMIT(answer=r)"))(
            messages
        )

    lm = ScriptedLM(answer)
    rlm = RLM("context -> answer", sandbox="inprocess", sub_lm=echo_sub(), max_depth=2)
    with dspy.context(lm=lm):
        pred = call(rlm, context="c")
    assert pred.answer == "4 False"
    assert any("Query (the task of this sub-run)" in m[-1]["content"] for m in lm.calls)


def test_bad_code_goes_back_as_feedback(call):
    steps = [("bash", "```bash\nls\n```"), ("empty", ""), ("boom", "1/0"), ("done", "SUBMIT(answer='ok')")]
    rlm, lm = make(steps=steps)
    with dspy.context(lm=lm):
        pred = call(rlm, context="c", query="q")
    outputs = [step["output"] for step in pred.trajectory]
    assert "Expected Python code" in outputs[0]
    assert "code field was empty" in outputs[1]
    assert "ZeroDivisionError" in outputs[2]
    assert pred.answer == "ok"


def test_runs_on_a_dspy_interpreter_factory(call):
    seen = []
    steps = [("look", "print(len(context))"), ("done", "SUBMIT(answer=str(llm_query('x')))")]
    rlm, lm = make(steps=steps, sandbox=None, interpreter_factory=dspy.LocalInterpreter, observers=[seen.append])
    with dspy.context(lm=lm):
        pred = call(rlm, context="abcd", query="q")
    assert pred.answer == "sub:x"
    assert pred.trajectory[0]["output"] == "4"
    assert [e.sandbox for e in seen if isinstance(e, RunStarted)] == ["dspy-interpreter"]


def test_dspy_settings_interpreter_factory_and_per_call_factory(call):
    seen = []
    rlm, lm = make(steps=[("done", "SUBMIT(answer='ok')")], sandbox=None, observers=[seen.append])
    with dspy.context(lm=lm, interpreter_factory=interpreter_factory("inprocess")):
        assert call(rlm, context="c", query="q").answer == "ok"
    with dspy.context(lm=lm):
        if call.mode == "sync":
            rlm(context="c", query="q", interpreter_factory=dspy.LocalInterpreter)
        else:
            asyncio.run(rlm.acall(context="c", query="q", interpreter_factory=dspy.LocalInterpreter))
    assert [e.sandbox for e in seen if isinstance(e, RunStarted)] == ["inprocess", "dspy-interpreter"]


def test_local_sandbox_is_the_default(call):
    seen = []
    steps = [("done", "import os\nSUBMIT(answer=str(os.getpid()))")]
    rlm, lm = make(steps=steps, sandbox=None, observers=[seen.append])
    with dspy.context(lm=lm):
        pred = call(rlm, context="c", query="q")
    assert pred.answer != str(os.getpid())
    assert [e.sandbox for e in seen if isinstance(e, RunStarted)] == ["local"]


def test_missing_and_unexpected_inputs_raise_like_dspy_rlm(call):
    rlm, lm = make()
    with dspy.context(lm=lm), pytest.raises(ValueError, match="Missing required inputs"):
        call(rlm, context="c")
    with dspy.context(lm=lm), pytest.raises(ValueError, match="Unexpected inputs"):
        call(rlm, context="c", query="q", other=1)


@pytest.mark.parametrize("sandbox", ["local", "inprocess"])
def test_aforward_never_blocks_the_event_loop(sandbox):
    steps = [("wait", "import time\ntime.sleep(0.4)\nprint(lookup('x'))"), ("done", "SUBMIT(answer='ok')")]
    rlm, lm = make(steps=steps, sandbox=sandbox, tools=[lookup])

    async def main():
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        with dspy.context(lm=lm):
            pred = await rlm.acall(context="c", query="q")
        stop.set()
        await task
        return pred, ticks

    pred, ticks = asyncio.run(main())
    assert pred.answer == "ok"
    assert pred.trajectory[0]["output"] == "X"
    assert ticks >= 20, f"the event loop ticked only {ticks} times during a 0.4 s sleep in the sandbox"
