"""The code, values and checks of the sandbox contract (`test_sandbox_contract.py`), kept apart from its tests."""

from __future__ import annotations

import pathlib
import threading
import time

from rlm_plugins.repl.base import SMALL_VALUE_BYTES, ExecResult

GRACE = 0.5
SPIN = "while True:\n    pass"
TIMEOUT = 0.1
"""The time limit the timeout tests give code that spins."""
THREADS = """
import threading
results = [None] * 16
def work(i):
    results[i] = {tool}(i)
threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
results
"""


class Overlap:
    """Counts the tool calls in progress at once: a peak above 1 shows they ran concurrently (no clock involved)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self._lock:
            self._now += 1
            self.peak = max(self.peak, self._now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._now -= 1


def slow_double(overlap: Overlap):
    """A tool that doubles its argument after 0.2 s, counted by `overlap`."""

    def slow_double(x: int) -> int:
        with overlap:
            time.sleep(0.2)
        return 2 * x

    return slow_double


def check_concurrent(result: ExecResult, overlap: Overlap, expected: list[int]) -> None:
    assert result.error is None, result.error
    assert result.stdout == f"{expected}\n"  # every thread got the answer to its own call
    assert len(result.tool_calls) == 16
    assert overlap.peak > 1, "the 16 tool calls never overlapped: they ran one at a time"


def failing_tool(x: int) -> int:
    raise ValueError(f"bad x={x}")


TOOL_ERROR = "try:\n    failing_tool(3)\nexcept RuntimeError as e:\n    print(e)\nundefined_tool()"


def check_tool_error(result: ExecResult) -> None:
    assert result.stdout == "failing_tool failed: ValueError: bad x=3\n"
    assert result.error is not None
    assert result.error.type == "NameError"  # a tool not passed to this execution does not exist
    assert [(c.name, c.error) for c in result.tool_calls] == [("failing_tool", "ValueError: bad x=3")]


BIG_LIST = list(range(20_000))
ROWS = {"rows": [{"id": i, "text": "é" * 10} for i in range(10_000)]}
LOADS = [  # name, value, an expression, what it shows, what `load` says; the big ones travel as a file
    ("small_str", "hello", "small_str", "'hello'", ("str", 5)),
    ("big_str", "é" * SMALL_VALUE_BYTES, "(len(big_str), big_str[-1])", f"({SMALL_VALUE_BYTES}, 'é')", ("str", 65536)),
    ("raw", b"\x00\xff bytes", "raw", "b'\\x00\\xff bytes'", ("bytes", 8)),
    ("big_raw", b"\x00\xff" * 50_000, "(len(big_raw), big_raw[:2])", "(100000, b'\\x00\\xff')", ("bytes", 100_000)),
    ("items", [1, "a", None], "items", "[1, 'a', None]", ("list", 3)),
    ("big_list", BIG_LIST, "(type(big_list).__name__, sum(big_list))", "('list', 199990000)", ("list", 20000)),
    ("mapping", {"k": [1, 2]}, "mapping['k']", "[1, 2]", ("dict", 1)),
    ("rows", ROWS, "(len(rows['rows']), rows['rows'][-1]['text'])", "(10000, 'éééééééééé')", ("dict", 1)),
]
PATH_CHECK = (
    "(text == bytes(mapped).decode(), type(mapped).__name__, mapped.find(b'needle'), mapped[250000:250006], "
    "data['rows'])"
)


def context_files(tmp_path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    text = tmp_path / "context.txt"
    text.write_text("line\n" * 50_000 + "needle\n")
    data = tmp_path / "context.json"
    data.write_text('{"rows": [1, 2, 3]}')
    return text, data


def check_path_loads(text_info: dict, mmap_info: dict, json_info: dict, shown: str) -> None:
    assert text_info == {"type": "str", "length": 250_007}
    assert mmap_info == {"type": "mmap", "length": 250_007}
    assert json_info == {"type": "dict", "length": 1}
    assert shown == "(True, 'mmap', 250000, b'needle', [1, 2, 3])\n"


NON_UTF8 = """
import os, sys
print(raw)
print(raw.decode('utf-8', 'surrogateescape'))
sys.stderr.write('\\udcff on stderr\\n')
os.write(1, b'\\xff\\xfe to fd 1\\n')
(len(raw), text.count('\\ufffd'))
"""
NON_UTF8_RAW = b"\xff\xfe\x80 ok"


def non_utf8_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"caf\xe9 \xff\xfe ok")
    return path


def check_non_utf8(result: ExecResult, after: ExecResult) -> None:
    assert result.error is None
    assert result.stdout.splitlines()[0] == "b'\\xff\\xfe\\x80 ok'"
    assert result.stdout.splitlines()[-1] == "(6, 3)"
    assert "on stderr" in result.stderr
    assert after.stdout == "'still fine'\n"


HUGE = "print('x' * 200_000_000)"
HUGE_CUT = 200_000_001 - 10_000


def check_huge(result: ExecResult, after: ExecResult) -> None:
    assert result.truncated
    assert result.stdout_cut == HUGE_CUT
    assert result.stdout.startswith("x" * 10_000 + "\n... [output truncated: ")
    assert result.stdout.endswith(f"[output truncated: {HUGE_CUT:,} more characters not shown]")
    assert after.stdout == "'next'\n"


def check_timeout(result: ExecResult, after: ExecResult) -> None:
    assert (result.timed_out, result.error, result.ok) == (True, None, False)
    assert (after.stdout, after.value) == ("1\n", 1)  # the namespace survived the interrupt


def check_final_answers(final: ExecResult, missing: ExecResult, submitted: ExecResult) -> None:
    assert final.final is not None and final.final.value == [1, 2]
    assert missing.final is None
    assert missing.error is not None and missing.error.type == "TypeError"
    assert submitted.final is not None and submitted.final.fields == {"answer": "a"}
