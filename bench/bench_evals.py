"""The engine's own time on the generated eval tasks: `python bench/bench_evals.py [--n 4] [--quick]`.

`niah` and `aggregate` at three sizes, each example run by the oracle policy (the ideal solution's replies) with
the scripted sub-model in the local sandbox. The models answer instantly, so a run's wall time is what the
engine and sandbox cost plus the oracle's own code. Per example it reports:

- wall: the whole run (sandbox start, context load, 3 root turns, code, sub-calls, close);
- code: time the blocks ran inside the sandbox (the oracle's regex / classification loops, sub-call round trips);
- engine: wall - code - model time: starting the sandbox, staging the context, building prompts, parsing.

A real model spends seconds per root call; compare `engine` with that, times the number of root turns (3 here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.engine import Engine
from rlm_plugins.core.events import CodeExecuted
from rlm_plugins.evals import TASKS, make_examples, oracle_answer
from rlm_plugins.evals.oracle import OracleRoot
from rlm_plugins.repl.factory import sandbox_factory

SIZES = (8_000, 128_000, 1_000_000)
QUICK_SIZES = (8_000, 32_000, 128_000)


class Timed:
    """Wraps a model callable and sums the time spent in it."""

    def __init__(self, fn):
        self.fn, self.seconds = fn, 0.0

    def __call__(self, arg):
        started = time.perf_counter()
        try:
            return self.fn(arg)
        finally:
            self.seconds += time.perf_counter() - started


def run_one(example, sandbox: str) -> dict[str, float]:
    root, sub = Timed(OracleRoot(example)), Timed(oracle_answer)
    code: list[float] = []
    engine = Engine(
        ChatPolicy(root, model="oracle"),
        CallableSubModel(sub, name="oracle-sub"),
        sandbox_factory(sandbox),
        observers=[lambda e: code.append(e.result.duration) if isinstance(e, CodeExecuted) else None],
    )
    started = time.perf_counter()
    result = engine.run(example.question, example.context)
    wall = time.perf_counter() - started
    score = TASKS[example.task].score(result.answer, example)
    return {"wall": wall, "code": sum(code), "model": root.seconds, "score": score}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4, help="examples per task and size")
    parser.add_argument("--quick", action="store_true", help="sizes 8K, 32K, 128K tokens")
    parser.add_argument("--sandbox", default="local", choices=["local", "inprocess"])
    args = parser.parse_args()
    sizes = QUICK_SIZES if args.quick else SIZES
    print(f"sandbox={args.sandbox}, {args.n} examples per row, medians per example")
    print(f"{'task':<10}{'tokens':>11}{'generate':>10}{'wall':>9}{'code':>9}{'engine':>9}{'score':>7}")
    for name in ("niah", "aggregate"):
        for size in sizes:
            started = time.perf_counter()
            examples = make_examples(TASKS[name], args.n, seed=0, size=size)
            generate = (time.perf_counter() - started) / args.n
            runs = [run_one(example, args.sandbox) for example in examples]
            wall = statistics.median(r["wall"] for r in runs)
            code = statistics.median(r["code"] for r in runs)
            engine = statistics.median(r["wall"] - r["code"] - r["model"] for r in runs)
            score = statistics.fmean(r["score"] for r in runs)
            print(f"{name:<10}{size:>11,}{generate:>9.3f}s{wall:>8.3f}s{code:>8.3f}s{engine:>8.3f}s{score:>7.2f}")


if __name__ == "__main__":
    main()
