"""Interpreter failures leave `rlm_plugins.dspy.RLM` as they leave `dspy.RLM` (dspy 3.4), checked side by side."""

from __future__ import annotations

import dspy
import pytest
from dspy.primitives.code_interpreter import CodeInterpreterError

from rlm_plugins.dspy import RLM
from tests.compat._fakes import DictInterpreter
from tests.unit_tests.dspy._scripted import ScriptedLM, echo_sub, is_extract, root

MODULES = [pytest.param(dspy.RLM, id="dspy"), pytest.param(RLM, id="ours")]


def run(module_class, call, factory, steps, **inputs):
    lm = ScriptedLM(root(*steps))
    rlm = module_class("q -> answer", max_iters=3, sub_lm=echo_sub(), interpreter_factory=factory)
    with dspy.context(lm=lm):
        try:
            return call(rlm, q="x", **inputs), lm
        finally:
            assert not any(is_extract(messages) for messages in lm.calls), "extract must not invent an answer"


@pytest.mark.parametrize("module_class", MODULES)
def test_code_interpreter_error_propagates(module_class, call):
    steps = [("look", "print('fine')"), ("break it", "crash()")]
    with pytest.raises(CodeInterpreterError, match="interpreter process died"):
        run(module_class, call, DictInterpreter, steps)


@pytest.mark.parametrize("module_class", MODULES)
def test_code_errors_still_go_to_the_model(module_class, call):
    steps = [("oops", "1 / 0"), ("fix", "SUBMIT(answer='ok')")]
    pred, _ = run(module_class, call, DictInterpreter, steps)
    assert pred.answer == "ok"
    assert "ZeroDivisionError" in pred.trajectory[0]["output"]


@pytest.mark.parametrize("module_class", MODULES)
def test_factory_returning_a_non_interpreter_is_a_type_error(module_class, call):
    with pytest.raises(TypeError, match="must implement CodeInterpreter, not object"):
        run(module_class, call, object, [("done", "SUBMIT(answer='x')")])


@pytest.mark.parametrize("module_class", MODULES)
def test_interpreter_start_failure_raises_code_interpreter_error(module_class, call):
    with pytest.raises(CodeInterpreterError, match="runtime binary is missing"):
        run(module_class, call, lambda: DictInterpreter(fail_start=True), [("done", "SUBMIT(answer='x')")])


@pytest.mark.parametrize("module_class", MODULES)
def test_factory_failure_propagates_unchanged(module_class, call):
    def factory():
        raise FileNotFoundError("deno not found")

    with pytest.raises(FileNotFoundError, match="deno not found"):
        run(module_class, call, factory, [("done", "SUBMIT(answer='x')")])


@pytest.mark.parametrize("module_class", MODULES)
@pytest.mark.parametrize("factory", [DictInterpreter(), 42], ids=["interpreter object", "not callable"])
def test_bad_factories_are_refused_at_construction(module_class, factory):
    with pytest.raises(TypeError) as raised:
        module_class("q -> answer", interpreter_factory=factory)
    with pytest.raises(TypeError) as native:
        dspy.RLM("q -> answer", interpreter_factory=factory)
    assert str(raised.value) == str(native.value)


class RaisingPredictor:
    """A replacement `generate_action` with no `lm` attribute, as DSPy's own tests install."""

    def __call__(self, **kwargs):
        raise ValueError("unexpected predictor failure")


@pytest.mark.parametrize("module_class", MODULES)
def test_a_predictor_failure_propagates_and_the_interpreter_is_shut_down(module_class):
    made: list[DictInterpreter] = []

    def factory() -> DictInterpreter:
        made.append(DictInterpreter())
        made[-1].started = True
        return made[-1]

    rlm = module_class("q -> answer", max_iters=1, interpreter_factory=factory)
    rlm.generate_action = RaisingPredictor()
    with pytest.raises(ValueError, match="unexpected predictor failure"):
        rlm(q="x")
    assert len(made) == 1 and made[0].started is False
