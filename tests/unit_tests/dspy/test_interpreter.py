"""Our sandboxes behind DSPy's `CodeInterpreter` protocol, checked clause by clause on every kind that runs here."""

from __future__ import annotations

import concurrent.futures as cf
import os

import dspy
import pytest
from dspy.primitives.code_interpreter import (
    CodeExecutionError,
    CodeInterpreter,
    CodeInterpreterError,
    FinalOutput,
    _validate_interpreter_factory,
)

from rlm_plugins.dspy import InterpreterFactory, SandboxInterpreter, interpreter_factory
from rlm_plugins.errors import ConfigurationError

KINDS = ["local", "inprocess"]


@pytest.fixture(params=KINDS)
def interp(request):
    interpreter = interpreter_factory(request.param)()
    yield interpreter
    interpreter.shutdown()


def test_factory_is_a_zero_argument_callable_with_instructions():
    factory = interpreter_factory("local", timeout=5)
    _validate_interpreter_factory(factory)
    assert not isinstance(factory, CodeInterpreter)
    assert "persistent" in factory.execution_instructions
    made = factory()
    assert isinstance(made, CodeInterpreter)
    assert made.timeout == 5
    assert made.sandbox is None, "a new interpreter allocates nothing before start()"
    with pytest.raises(ConfigurationError, match="unknown sandbox kind"):
        interpreter_factory("lxc")


def test_start_is_idempotent_and_state_persists(interp):
    interp.start()
    sandbox = interp.sandbox
    interp.start()
    assert interp.sandbox is sandbox
    assert interp.execute("x = 41") is None
    assert interp.execute("x + 1") == 42
    assert interp.execute("print('a')\nprint('b')") == "a\nb"
    assert interp.execute("print('n')\nx") == "n\n41"


def test_submit_returns_final_output_with_typed_fields(interp):
    interp.output_fields = [{"name": "answer", "type": "int"}, {"name": "why"}]
    assert interp.execute("SUBMIT(answer=1, why='w')") == FinalOutput({"answer": 1, "why": "w"})
    assert interp.execute("SUBMIT(2, 'x')") == FinalOutput({"answer": 2, "why": "x"})
    with pytest.raises(CodeExecutionError, match="missing why"):
        interp.execute("SUBMIT(answer=1)")


def test_submit_without_output_fields_takes_one_value(interp):
    assert interp.execute("SUBMIT([1, 2])") == FinalOutput({"output": [1, 2]})


def test_recoverable_errors_keep_the_session(interp):
    interp.execute("y = 5")
    with pytest.raises(SyntaxError):
        interp.execute("def (")
    with pytest.raises(CodeExecutionError, match="ZeroDivisionError") as raised:
        interp.execute("print('before')\n1/0")
    assert "before" in str(raised.value)
    assert not isinstance(raised.value, SyntaxError)
    assert interp.execute("y") == 5


def test_tools_dict_is_mutable_and_tools_run_on_the_host(interp):
    calls = []
    interp.tools["record"] = lambda value, tag="": calls.append((value, tag)) or len(calls)
    assert interp.execute("record(1)\nrecord(2, tag='t')") == 2
    assert calls == [(1, ""), (2, "t")]

    async def twice(x):
        return x * 2

    interp.tools["twice"] = twice
    assert interp.execute("twice(21)") == 42
    interp.tools["boom"] = lambda: 1 / 0
    with pytest.raises(CodeExecutionError, match="ZeroDivisionError"):
        interp.execute("boom()")


def test_tools_see_the_callers_dspy_context(interp):
    interp.tools["which"] = lambda: dspy.settings.get("rlm_test_marker", "none")
    with dspy.context(rlm_test_marker="mine"):
        assert interp.execute("which()") == "mine"


def test_variables_are_sent_once_per_object(interp):
    big = "v" * 200_000
    interp.start()
    loads = []
    original = interp.sandbox.load

    def counting(name, value, format=None):
        loads.append(name)
        return original(name, value, format)

    interp.sandbox.load = counting
    assert interp.execute("len(big)", {"big": big, "n": 3}) == 200_000
    assert interp.execute("big = 'changed'\nn", {"big": big, "n": 3}) == 3
    assert interp.execute("big", {"big": big}) == "changed"
    assert loads == ["big", "n"]
    interp.execute("big", {"big": "other"})
    assert loads == ["big", "n", "big"]
    with pytest.raises(CodeInterpreterError, match="identifiers"):
        interp.execute("1", {"not valid": 1})


def test_shutdown_is_final(interp):
    interp.execute("1")
    interp.shutdown()
    interp.shutdown()
    with pytest.raises(CodeInterpreterError, match="shut down"):
        interp.execute("1")
    with pytest.raises(CodeInterpreterError, match="shut down"):
        interp.start()


def test_a_dead_sandbox_process_is_terminal():
    interp = SandboxInterpreter("local")
    try:
        interp.execute("x = 1")
        with pytest.raises(CodeInterpreterError) as raised:
            interp.execute("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
        assert not isinstance(raised.value, CodeExecutionError)
        with pytest.raises(CodeInterpreterError):
            interp.execute("1")
    finally:
        interp.shutdown()


def test_timeout_interrupts_and_keeps_the_session():
    interp = SandboxInterpreter("local", timeout=0.5)
    try:
        interp.execute("z = 1")
        with pytest.raises(CodeExecutionError, match="timed out"):
            interp.execute("while True: pass")
        assert interp.execute("z") == 1
    finally:
        interp.shutdown()


def test_factory_may_be_called_concurrently():
    factory = InterpreterFactory("local")

    def one(i):
        interp = factory()
        try:
            return interp.execute(f"x = {i}\nx * 2", {"i": i})
        finally:
            interp.shutdown()

    with cf.ThreadPoolExecutor(4) as pool:
        assert list(pool.map(one, range(4))) == [0, 2, 4, 6]


def test_configure_interpreter_factory_reaches_native_rlm():
    from tests.unit_tests.dspy._scripted import ScriptedLM, echo_sub, root

    lm = ScriptedLM(root(("go", "import os\nSUBMIT(answer=str(os.getpid() != int(host)))")))
    native = dspy.RLM("host -> answer", sub_lm=echo_sub())
    dspy.configure(interpreter_factory=interpreter_factory("local"))
    try:
        with dspy.context(lm=lm):
            pred = native(host=str(os.getpid()))
    finally:
        dspy.configure(interpreter_factory=None)
    assert pred.answer == "True"
    assert "persistent sandboxed subprocess" in lm.calls[0][0]["content"]
