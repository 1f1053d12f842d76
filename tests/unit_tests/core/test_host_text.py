"""Text on the host side is always valid and every conversion survives odd values: lone surrogates from sandbox code
or a model reply, ints past the str-conversion limit, lists that contain themselves. The JSONL log keeps every
iteration, the response always encodes, and an observer that fails is reported instead of silently losing events.
"""

from __future__ import annotations

import json
import pathlib
import warnings

import pytest

from rlm_plugins.core.events import RunStarted, emit
from rlm_plugins.core.logger import RLMLogger
from tests.unit_tests.core.test_engine import drive, engine_for, repl, script  # noqa: F401 - `drive` is a fixture

ODD_CELLS = [
    repl("x = []\nx.append(x)\nx"),
    repl("import math\nmath.factorial(2000)"),
    repl("FINAL(10**5000)"),
    "thinking \udcff aloud\n" + repl("print('\\udcff printed')\n'\\udcff trailing'"),
    repl("FINAL('\\udcff answer')"),
]


@pytest.mark.parametrize("kind", ["local", "inprocess"])
def test_odd_values_are_cell_errors_and_the_log_keeps_every_iteration(drive, kind: str, tmp_path) -> None:  # noqa: F811
    logger = RLMLogger(tmp_path)
    engine = engine_for(script(*ODD_CELLS), sandbox=kind, observers=[logger])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no observer may fail
        result = drive(engine, "q", "ctx")
    assert (result.finish_reason, result.response) == ("final", "? answer")
    assert [bool(step.runs and step.runs[0].result.error) for step in result.steps] == [
        False,
        True,
        True,
        False,
        False,
    ]
    text = pathlib.Path(logger.log_file_path).read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["type"] for line in lines] == ["metadata"] + ["iteration"] * 5
    assert "\ufffd" not in lines[4]["response"] and "?" in lines[4]["response"]


@pytest.mark.parametrize("answer", [10**5000, [[1], {"deep": 1}], "\udcff text"], ids=["huge-int", "list", "surrogate"])
def test_the_response_is_always_text(drive, answer) -> None:  # noqa: F811
    engine = engine_for(script(repl("FINAL('x')")), final_validator=lambda final: (answer, None))
    result = drive(engine, "q")
    assert isinstance(result.response, str) and result.response.encode("utf-8")
    assert result.answer is answer


def test_the_response_of_a_list_that_contains_itself_is_text(drive) -> None:  # noqa: F811
    cycle: list = []
    cycle.append(cycle)
    engine = engine_for(script(repl("FINAL('x')")), final_validator=lambda final: (cycle, None))
    assert drive(engine, "q").response == '["<cycle>"]'


def test_a_failing_observer_is_reported_once() -> None:
    seen = []

    def broken(event: object) -> None:
        raise OSError("disk full")

    event = RunStarted("run", 0, "q", [])
    with pytest.warns(RuntimeWarning, match="disk full") as record:
        emit([broken, seen.append], event)
        emit([broken, seen.append], event)
    assert len([w for w in record if "disk full" in str(w.message)]) == 1
    assert seen == [event, event]  # the others still get every event
