"""Our `CodeInterpreter` reports DSPy's interpreter callbacks as `dspy.LocalInterpreter` does (dspy 3.4)."""

from __future__ import annotations

import dspy
import pytest
from dspy.utils.callback import BaseCallback

from rlm_plugins.dspy import SandboxInterpreter


class Recorder(BaseCallback):
    """Records every interpreter event as (operation, phase, detail)."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        for op in ("execute", "tool_call", "startup", "shutdown"):
            setattr(self, f"on_interpreter_{op}_start", self._start(op))
            setattr(self, f"on_interpreter_{op}_end", self._end(op))

    def _start(self, op):
        def handler(call_id, instance, inputs):
            self.events.append((op, "start", inputs.get("tool_name"), inputs.get("args"), inputs.get("kwargs")))

        return handler

    def _end(self, op):
        def handler(call_id, outputs, exception=None):
            self.events.append((op, "end", outputs if op == "tool_call" else None, type(exception).__name__))

        return handler


def add(a: int, b: int) -> int:
    return a + b


async def amul(a: int, b: int) -> int:
    return a * b


def broken() -> None:
    raise ValueError("no")


CODE = "print(add(1, b=2) + amul(3, 4))"


@pytest.fixture(params=["local-dspy", "ours-inprocess", "ours-local"])
def make(request):
    if request.param == "local-dspy":
        return dspy.LocalInterpreter
    kind = request.param.split("-")[1]
    return lambda **options: SandboxInterpreter(kind, **options)


def _events(make, via_context: bool) -> list[tuple]:
    recorder = Recorder()
    interp = make() if via_context else make(callbacks=[recorder])
    interp.tools.update(add=add, amul=amul, broken=broken)
    with dspy.context(callbacks=[recorder] if via_context else []):
        assert str(interp.execute(CODE)).strip() == "15"
        with pytest.raises(Exception, match="no"):
            interp.execute("broken()")
        interp.shutdown()
    return recorder.events


@pytest.mark.parametrize("via_context", [True, False], ids=["dspy.context", "callbacks="])
def test_interpreter_and_tool_callbacks(make, via_context):
    events = _events(make, via_context)
    ops = [(e[0], e[1]) for e in events]
    assert ops.count(("startup", "start")) >= 1 and ("shutdown", "end") in ops
    assert ops.count(("execute", "start")) == 2 and ops.count(("execute", "end")) == 2
    tools = [e for e in events if e[0] == "tool_call"]
    assert ("tool_call", "start", "add", [1], {"b": 2}) in tools
    assert ("tool_call", "end", 3, "NoneType") in tools
    assert ("tool_call", "start", "amul", [3, 4], {}) in tools
    assert ("tool_call", "end", 12, "NoneType") in tools
    assert ("tool_call", "end", None, "ValueError") in tools
