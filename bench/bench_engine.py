"""The engine side by side with its peers, in one process: `python bench/bench_engine.py [--runs 5] [--quick]`.

With `--http`, every engine talks to one loopback OpenAI-compatible server instead (see `_http_bench.py`);
`--only w2`, `--only calls` or `--only w3` runs one part of it.

- ours: `rlm_plugins` Engine + ChatPolicy (scripted replies) + the `local` sandbox (best isolation here).
- dspy.RLM with its LocalInterpreter, DummyLM as root and sub-model.
- the official `rlms` package (`pip install rlms`), local environment, scripted BaseLM clients.

W2 (100 MB context, 3 x 100-way fan-out, then final) with excerpt prompts and with full 1 MB chunk prompts;
W3: 1,000 sub-calls with a simulated 100 ms latency at concurrency 32 (ideal: ceil(n/c) x latency).
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _workloads import (
    MB,
    PeakMemory,
    fanout_code,
    median_time,
    official_rlm,
    root_replies,
    w2_engine,
    w2_setup,
    w3_engine,
)


def run_ours(context: str, full: bool, sandbox: str = "local") -> str:
    return w2_engine(full, sandbox).run("bench", context).response


def run_dspy(context: str, full: bool) -> str:
    import dspy
    from dspy.primitives.local_interpreter import LocalInterpreter

    replies = [{"reasoning": "fan out", "code": fanout_code(i, full)} for i in range(1, 4)]
    replies.append({"reasoning": "done", "code": "SUBMIT(answer='done')"})
    root = dspy.utils.DummyLM(replies)
    sub = dspy.utils.DummyLM([{"response": "ok"}] * 400)
    rlm = dspy.RLM(
        "context -> answer", max_iters=10, max_llm_calls=1000, sub_lm=sub, interpreter_factory=LocalInterpreter
    )
    with dspy.context(lm=root, cache=False):
        return rlm(context=context).answer


def run_official(context: str, full: bool) -> str:
    engine = official_rlm(root_replies(full, final="answer['content'] = 'done'\nanswer['ready'] = True"))
    return engine.completion(context).response


def w3(concurrency: int = 32, calls: int = 1000, latency: float = 0.1) -> dict[str, float]:
    """1,000 sub-calls at 100 ms each, concurrency 32, from one llm_query_batched call."""
    code = f"r = llm_query_batched([str(i) for i in range({calls})])\nFINAL(len(r))"
    out = {"ideal": math.ceil(calls / concurrency) * latency}
    for mode in ("sync", "async"):
        engine = w3_engine(code, mode, calls, latency, concurrency)
        started = time.perf_counter()
        result = engine.run("w3", "x") if mode == "sync" else asyncio.run(engine.arun("w3", "x"))
        assert result.response == str(calls), result
        out[mode] = time.perf_counter() - started
    return out


def _only() -> str:
    """`--only w2|calls|w3` (with `--http`): run one part of the HTTP benchmark; taken off argv before parsing."""
    if "--only" not in sys.argv:
        return "all"
    index = sys.argv.index("--only")
    value = sys.argv[index + 1]
    del sys.argv[index : index + 2]
    return value


def main() -> None:
    only = _only()
    runs, context, http = w2_setup(__doc__.splitlines()[0], http=True)
    if http:
        from _http_bench import main as http_main

        http_main(runs, context, only)
        return
    size = len(context)
    from rlm_plugins.repl.isolation import best_level

    print(f"context {size / MB:.0f} MB, {runs} runs each, local sandbox isolation: {best_level()}\n")
    rows = []
    peers = [
        ("rlm-plugins (local sandbox)", run_ours),
        ("dspy.RLM + LocalInterpreter", run_dspy),
        ("official rlms (local)", run_official),
    ]
    for full in (False, True):
        label = "W2 full 1 MB prompts" if full else "W2"
        base = None
        for name, fn in peers:
            with PeakMemory() as mem:
                try:
                    seconds, answer = median_time(lambda fn=fn, full=full: fn(context, full), runs)
                except Exception as exc:
                    rows.append((label, name, float("nan"), "", f"failed: {type(exc).__name__}: {exc}"[:80]))
                    continue
            base = base or seconds
            used = mem.footprint(len(context))
            notes = f"{used:,.0f} MB ({used * MB / len(context):.1f}x the context), answer={answer}"
            rows.append((label, name, seconds, f"{seconds / base:.1f}x", notes))
    print("| workload | engine | median s | vs ours | notes |\n| --- | --- | --- | --- | --- |")
    for label, name, seconds, ratio, notes in rows:
        print(f"| {label} | {name} | {seconds:.3f} | {ratio} | {notes} |")
    result = w3()
    print(
        f"\nW3 (1,000 calls x 100 ms, concurrency 32): ideal {result['ideal']:.2f}s, sync {result['sync']:.2f}s "
        f"({result['sync'] / result['ideal']:.3f}x ideal), async {result['async']:.2f}s "
        f"({result['async'] / result['ideal']:.3f}x ideal)"
    )


if __name__ == "__main__":
    main()
