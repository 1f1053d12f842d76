"""E2B sandbox benchmark over a fake envd on loopback, next to the `local` sandbox, in one run.

The real `e2b` SDK runs in debug mode against `tests/fakes/envd.py` (127.0.0.1:49983, HTTP/1.1, the driver as a
local process), so the figures are the cost of our backend plus the SDK's HTTP machinery, without the network:
the real cloud adds its round-trip time to every `llm_query` and its bandwidth to every upload. The fake envd runs
in this process and shares its CPU and GIL with the host side. Run from the repository root:

    python bench/bench_e2b.py [--calls 500] [--loads 3]

Measured for `e2b` (context uploads gzip-compressed on the wire, the default, and uncompressed) and `local`:
sandbox start, a warm `execute("1")`, the `llm_query` round trip (median per call of `--calls` calls to an
instant host function from one execution, timed inside the sandbox), and loading a 10 MB and a 100 MB `str`
context and a 100 MB `pathlib.Path` (median of `--loads`), with the host's peak RSS growth for the Path.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.fakes lives in the checkout, not in the package
    sys.path.insert(0, str(ROOT))

from _workloads import reset_peak_rss, status_kib  # noqa: E402

from rlm_plugins.repl import LocalSandbox, isolation  # noqa: E402
from rlm_plugins.repl.base import BaseSandbox  # noqa: E402
from rlm_plugins.repl.e2b import E2BSandbox  # noqa: E402
from tests.fakes.envd import FakeEnvd  # noqa: E402

MB = 1_000_000
TOOL_LOOP = """
import time, statistics
_times = []
for _ in range({calls}):
    _t = time.perf_counter()
    llm_query("ping")
    _times.append(time.perf_counter() - _t)
statistics.median(_times) * 1000
"""


def llm_query(prompt: str) -> str:
    return "pong"


def text(size: int) -> str:
    """Prose-like text, deterministic: Zipf-distributed words, so gzip packs it about as well as it packs English."""
    rng = random.Random(0)
    words = ["".join(rng.choice("etaoinshrdlucmfwypvbgkjqxz") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
    weights = [1 / rank for rank in range(1, len(words) + 1)]
    out, total = [], 0
    while total < size:
        line = " ".join(rng.choices(words, weights, k=12)) + ".\n"
        out.append(line)
        total += len(line)
    return "".join(out)[:size]


def median_s(fn: Callable[[], Any], runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(make: Callable[[], BaseSandbox], contexts: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def start_close() -> None:
        with make() as sandbox:
            sandbox.start()

    out["start"] = median_s(start_close, 5)
    with make() as sandbox:
        out["exec"] = median_s(lambda: sandbox.execute("1"), 200, warmup=20) * 1000
        out["tool"] = float(sandbox.execute(TOOL_LOOP.format(calls=args.calls), tools={"llm_query": llm_query}).stdout)
        for label, value in contexts.items():
            out[label] = median_s(lambda value=value: sandbox.load("context", value), args.loads)
            assert int(sandbox.execute("len(context)").stdout) > 0
        reset = reset_peak_rss()
        before = status_kib("VmHWM")
        sandbox.load("context", contexts["path"])
        out["rss"] = (status_kib("VmHWM") - before) / 1024 if reset else None
    return out


def table(columns: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    rows = [
        ("sandbox start (create, driver, hello; median of 5)", lambda r: f"{r['start'] * 1000:.0f} ms"),
        ("warm `execute('1')` (median of 200)", lambda r: f"{r['exec']:.2f} ms"),
        (f"`llm_query` round trip (median of {args.calls} in one execution)", lambda r: f"{r['tool']:.2f} ms"),
        (f"load a 10 MB str context (median of {args.loads})", lambda r: f"{r['str10']:.3f} s"),
        (f"load a 100 MB str context (median of {args.loads})", lambda r: f"{r['str100']:.3f} s"),
        (f"load a 100 MB `pathlib.Path` context (median of {args.loads})", lambda r: f"{r['path']:.3f} s"),
        (
            "host peak RSS growth while loading the 100 MB Path",
            lambda r: "n/a" if r["rss"] is None else f"+{r['rss']:,.0f} MiB",
        ),
    ]
    lines = ["| measure | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    lines += [f"| {name} | " + " | ".join(cell(r) for r in columns.values()) + " |" for name, cell in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--loads", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", "E2BSandbox uploads the driver")
    level = isolation.best_level()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, local isolation level: {level}")
    fd, name = tempfile.mkstemp(prefix="rlm-bench-e2b-", suffix=".txt")
    big = text(100 * MB)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(big)
    contexts = {"str10": big[: 10 * MB], "str100": big, "path": pathlib.Path(name)}
    try:
        with FakeEnvd() as envd:
            columns = {
                "e2b, gzip upload (fake envd)": measure(
                    lambda: E2BSandbox(debug=True, workdir=envd.workdir, compress=True), contexts, args
                ),
                "e2b, plain upload (fake envd)": measure(
                    lambda: E2BSandbox(debug=True, workdir=envd.workdir, compress=False), contexts, args
                ),
            }
        columns[f"local ({level})"] = measure(lambda: LocalSandbox(isolation="auto"), contexts, args)
    finally:
        os.unlink(name)
    print(table(columns, args))


if __name__ == "__main__":
    main()
