"""Sandbox benchmark: context load, warm execution and tool-call round trip.

Measures the `local` sandbox at the best isolation level this machine offers, with `inprocess` alongside for
reference, and prints a markdown table next to the targets of the sandbox issue. Run from the repository root:

    python bench/bench_sandbox.py            # everything
    python bench/bench_sandbox.py --starts   # only the start cost at each isolation level this machine offers

It writes a 1 GiB text file under /tmp once (deleted at the end) and needs about 3 GiB of free memory.
The start cost is start + `execute("1")` + close of a fresh sandbox (median and p90 of `STARTS`), at each level.
"""

from __future__ import annotations

import os
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

try:
    import rlm_plugins  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from _workloads import reset_peak_rss, status_kib

from rlm_plugins.repl import InProcessSandbox, LocalSandbox, isolation
from rlm_plugins.repl.base import BaseSandbox

GiB = 1024**3
BIG_FILE_BYTES = GiB
STR_CONTEXT = "abcdefghi\n" * 10_000_000  # 100 MB
EXECUTIONS = 2000
TOOL_CALLS = 2000
LOADS = 5
STARTS = 40

TOOL_LOOP = f"""
import time, statistics
_times = []
for _ in range({TOOL_CALLS}):
    _t = time.perf_counter()
    noop(1)
    _times.append(time.perf_counter() - _t)
statistics.median(_times) * 1000
"""


def noop(x: int) -> int:
    return x


def median_ms(fn: Callable[[], Any], runs: int, warmup: int = 200) -> tuple[float, float]:
    """Median and 90th percentile of `fn`'s wall time, in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.9)] * 1000


def timed_load(sb: BaseSandbox, value: Any, fmt: str | None = None) -> tuple[float, float | None]:
    """Seconds to load `value` as `context`, and how much the host's peak RSS grew meanwhile (MiB)."""
    reset = reset_peak_rss()
    before = status_kib("VmHWM")
    start = time.perf_counter()
    sb.load("context", value, format=fmt)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    grown = (status_kib("VmHWM") - before) / 1024 if reset else None
    return elapsed, grown


def make_big_file() -> pathlib.Path:
    fd, name = tempfile.mkstemp(prefix="rlm-bench-1g-", suffix=".txt", dir="/tmp")
    line = b"the quick brown fox jumps over the lazy dog 0123456789\n"
    chunk = line * (8 * 1024 * 1024 // len(line))
    with os.fdopen(fd, "wb") as out:
        written = 0
        while written < BIG_FILE_BYTES:
            piece = chunk[: BIG_FILE_BYTES - written]
            out.write(piece)
            written += len(piece)
    return pathlib.Path(name)


def run_backend(make: Callable[..., BaseSandbox], big: pathlib.Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with make() as sb:
        out["level"] = sb.isolation
        out["exec"] = median_ms(lambda: sb.execute("1"), EXECUTIONS)
        out["tool"] = float(sb.execute(TOOL_LOOP, tools={"noop": noop}).stdout)
        loads = [timed_load(sb, STR_CONTEXT)[0] for _ in range(LOADS)]
        out["load_str"] = statistics.median(loads)
        sb.load("context", "")
        out["load_mmap"], out["rss_mmap"] = timed_load(sb, big, "mmap")
        assert sb.execute("len(context)").stdout.strip() == str(BIG_FILE_BYTES)
        out["exec_mmap"] = median_ms(lambda: sb.execute("1"), EXECUTIONS)
    with make(memory_limit=4 * GiB) as sb:
        out["load_text"], out["rss_text"] = timed_load(sb, big, "text")
        assert sb.execute("len(context)").stdout.strip() == str(BIG_FILE_BYTES)
        out["exec_text"] = median_ms(lambda: sb.execute("1"), EXECUTIONS)
    return out


def _local(**options: Any) -> LocalSandbox:
    return LocalSandbox(isolation="auto", **options)


def _inprocess(memory_limit: int | None = None) -> InProcessSandbox:
    return InProcessSandbox()


def start_costs() -> dict[str, tuple[float, float]]:
    """Milliseconds to start a sandbox, run `1` and close it, at each isolation level that works here."""
    out = {}
    for level in isolation.LEVELS:
        if isolation.available(level):

            def cycle(level: str = level) -> None:
                with LocalSandbox(isolation=level) as sb:
                    sb.execute("1")

            out[level] = median_ms(cycle, STARTS, warmup=3)
    return out


def _ms(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.3f} ms (p90 {pair[1]:.3f})"


def _mib(value: float | None) -> str:
    return "n/a (VmHWM reset refused)" if value is None else f"+{value:,.0f} MiB"


NOT_READ = "~0: the host never reads it"


def table(local: dict[str, Any], inproc: dict[str, Any]) -> str:
    rows = [
        ("load a 100 MB str context (median of 5)", "<= 0.2 s", lambda r: f"{r['load_str']:.3f} s"),
        ("warm `execute('1')`, no context (median of 2000)", "<= 0.3 ms", lambda r: _ms(r["exec"])),
        ("warm `execute('1')`, 1 GiB Path loaded as mmap", "<= 0.3 ms", lambda r: _ms(r["exec_mmap"])),
        ("warm `execute('1')`, 1 GiB Path loaded as text", "<= 0.3 ms", lambda r: _ms(r["exec_text"])),
        ("tool-call round trip (median of 2000 in one execution)", "<= 0.2 ms", lambda r: f"{r['tool']:.3f} ms"),
        ("load a 1 GiB Path, format='mmap'", "-", lambda r: f"{r['load_mmap']:.3f} s"),
        ("load a 1 GiB Path, format='text'", "-", lambda r: f"{r['load_text']:.3f} s"),
        ("host peak RSS growth while loading the 1 GiB Path (mmap)", NOT_READ, lambda r: _mib(r["rss_mmap"])),
        ("host peak RSS growth while loading the 1 GiB Path (text)", NOT_READ, lambda r: _mib(r["rss_text"])),
    ]
    head = f"| measure | target | local ({local['level']}) | inprocess (none, for reference) |"
    lines = [head, "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {target} | {cell(local)} | {cell(inproc)} |" for name, target, cell in rows]
    return "\n".join(lines)


def main() -> None:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, local isolation level: {isolation.best_level()}")
    print("| level | start + execute('1') + close |\n| --- | --- |")
    for level, pair in start_costs().items():
        print(f"| {level} | {_ms(pair)} |")
    if "--starts" in sys.argv[1:]:
        return
    big = make_big_file()
    try:
        local = run_backend(_local, big)
        inproc = run_backend(_inprocess, big)
    finally:
        big.unlink()
    print(table(local, inproc))


if __name__ == "__main__":
    main()
