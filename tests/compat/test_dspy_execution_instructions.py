"""An interpreter factory's `execution_instructions` reach the action prompt, as in `dspy.RLM` (dspy 3.4)."""

from __future__ import annotations

import re

import dspy
import pytest

from rlm_plugins.dspy import RLM, interpreter_factory
from rlm_plugins.dspy.signatures import EXECUTION_RULES
from tests.compat._fakes import DictInterpreter
from tests.unit_tests.dspy._scripted import ScriptedLM, echo_sub, root

MARS = "Code runs on the MARS-7 VM; numpy is not installed."


def mars_factory() -> DictInterpreter:
    return DictInterpreter()


mars_factory.execution_instructions = MARS


def first_prompt(module_class, call, **kwargs) -> str:
    lm = ScriptedLM(root(("done", "SUBMIT(answer='ok')")))
    with dspy.context(lm=lm, **kwargs.pop("context", {})):
        assert call(module_class("q -> answer", sub_lm=echo_sub(), **kwargs), q="x").answer == "ok"
    return lm.calls[0][0]["content"]


@pytest.mark.parametrize("module_class", [dspy.RLM, RLM], ids=["dspy", "ours"])
@pytest.mark.parametrize("how", ["constructor", "context"])
def test_factory_execution_instructions_are_in_the_action_prompt(module_class, how, call):
    kwargs = (
        {"interpreter_factory": mars_factory}
        if how == "constructor"
        else {"context": {"interpreter_factory": mars_factory}}
    )
    prompt = first_prompt(module_class, call, **kwargs)
    assert re.search(r"Execution environment:\s*" + re.escape(MARS), prompt)


def test_they_replace_our_default_runtime_description(call):
    ours = EXECUTION_RULES.strip().splitlines()[1][:50]
    assert ours not in first_prompt(RLM, call, interpreter_factory=mars_factory)
    assert ours in first_prompt(RLM, call, sandbox="inprocess")


def test_our_factories_describe_their_sandbox(call):
    factory = interpreter_factory("inprocess")
    prompt = first_prompt(RLM, call, interpreter_factory=factory)
    assert factory.execution_instructions and factory.execution_instructions in prompt


def test_an_optimized_instruction_is_kept(call):
    lm = ScriptedLM(root(("done", "SUBMIT(answer='ok')")))
    rlm = RLM("q -> answer", sub_lm=echo_sub(), interpreter_factory=mars_factory)
    tuned = rlm.generate_action.signature.instructions.replace("You are tasked", "TUNED: you are tasked")
    rlm.generate_action.signature = rlm.generate_action.signature.with_instructions(tuned)
    with dspy.context(lm=lm):
        call(rlm, q="x")
    assert "TUNED: you are tasked" in lm.calls[0][0]["content"]
    assert MARS in lm.calls[0][0]["content"]


@pytest.mark.parametrize("module_class", [dspy.RLM, RLM], ids=["dspy", "ours"])
def test_non_string_instructions_are_a_type_error(module_class, call):
    def factory() -> DictInterpreter:
        return DictInterpreter()

    factory.execution_instructions = ["not", "text"]
    with pytest.raises(TypeError, match="execution_instructions must be a string"):
        lm = ScriptedLM(root(("done", "SUBMIT(answer='ok')")))
        with dspy.context(lm=lm):
            call(module_class("q -> answer", sub_lm=echo_sub(), interpreter_factory=factory), q="x")


@pytest.mark.parametrize("module_class", [dspy.RLM, RLM], ids=["dspy", "ours"])
def test_the_constructor_factory_shapes_the_saved_signature(module_class):
    instructions = module_class("q -> answer", interpreter_factory=mars_factory).generate_action.signature.instructions
    assert MARS in instructions
