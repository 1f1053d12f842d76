"""W2 through DSPy: a 100 MB str context, 3 iterations each fanning `llm_query_batched` over 100 chunks, then SUBMIT.

The workload is the shared one of `bench/_workloads.py` (the same context, chunking and 2,000-character excerpts per
sub-call prompt as the engine benchmark), ended by `SUBMIT(answer=...)` instead of `FINAL(...)`.

Compared in one run, with the same scripted root model (DummyLM answering the same four steps) and an instant
sub-model:

- `ours`: `rlm_plugins.dspy.RLM` on the `local` sandbox (isolated subprocess, context loaded once as a file);
- `dspy.RLM + LocalInterpreter`: DSPy's own local CPython worker (its variables travel as JSON at every step);
- `dspy.RLM + our local interpreter`: the native module on `rlm_plugins.dspy.interpreter_factory("local")`;
- `dspy.RLM + PythonInterpreter`: DSPy's default (Deno + Pyodide), only when Deno runs here.

Each configuration runs in its own process, so its memory is its own: the host's peak RSS (the 100 MB context itself
included), and the peak of host + sandbox processes together (`_workloads.PeakMemory`, sampled every 5 ms). Each
configuration gets one warm-up run that is not timed. Usage:

    python bench/bench_dspy.py --runs 5 [--size-mb 100] [--readme bench/README.md]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

from _workloads import MB, PeakMemory, fanout_code, make_context

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {
    "ours": "rlm_plugins.dspy.RLM (local sandbox)",
    "native_local_interpreter": "dspy.RLM + dspy LocalInterpreter",
    "native_ours": "dspy.RLM + rlm_plugins local interpreter",
    "native_python_interpreter": "dspy.RLM + dspy PythonInterpreter (Deno/Pyodide)",
}


def steps() -> list[dict[str, str]]:
    """The shared W2 root script (`_workloads.fanout_code`), as DSPy (reasoning, code) steps ending in SUBMIT."""
    fanouts = [{"reasoning": f"Fan out, pass {i}.", "code": fanout_code(i, full=False)} for i in range(1, 4)]
    return [*fanouts, {"reasoning": "Done.", "code": "SUBMIT(answer=str(len(answers) * 3))"}]


def instant_lm() -> Any:
    import dspy

    class InstantLM(dspy.BaseLM):
        """A sub-model that answers at once (no history, no cache): the bench measures the RLM machinery."""

        def __init__(self) -> None:
            super().__init__("instant")

        def __call__(self, prompt: Any = None, **kwargs: Any) -> list[str]:
            return ["ok"]

        async def acall(self, prompt: Any = None, **kwargs: Any) -> list[str]:
            return ["ok"]

    return InstantLM()


def build(config: str) -> Any:
    import dspy

    from rlm_plugins.dspy import RLM, interpreter_factory

    kwargs: dict[str, Any] = {"max_iters": 8, "max_llm_calls": 400, "sub_lm": instant_lm()}
    if config == "ours":
        return RLM("context, query -> answer", sandbox="local", **kwargs)
    factory = {
        "native_local_interpreter": dspy.LocalInterpreter,
        "native_ours": interpreter_factory("local"),
        "native_python_interpreter": dspy.PythonInterpreter,
    }[config]
    return dspy.RLM("context, query -> answer", interpreter_factory=factory, **kwargs)


def run_one(config: str, runs: int, size_mb: int) -> dict[str, Any]:
    """Runs `config` `runs` times in this process; returns times and peak memory."""
    import dspy
    from dspy.utils.dummies import DummyLM

    context = make_context(size_mb * MB)
    times, answers = [], []
    with PeakMemory() as memory:
        for attempt in range(runs + 1):
            program = build(config)
            lm = DummyLM(steps())
            with dspy.context(lm=lm):
                started = time.perf_counter()
                pred = program(context=context, query="How many chunk answers?")
                elapsed = time.perf_counter() - started
            if attempt:  # the first run warms up imports and caches
                times.append(elapsed)
            answers.append(pred.answer)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB
    return {"config": config, "times": times, "answers": answers, "host_peak_mb": own, "tree_peak_mb": memory.peak_mb}


def measure(config: str, runs: int, size_mb: int) -> dict[str, Any]:
    """`run_one` in a fresh interpreter, so each configuration's peak memory is its own."""
    cmd = [sys.executable, __file__, "--one", config, "--runs", str(runs), "--size-mb", str(size_mb)]
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return {"config": config, "error": lines[-1] if lines else f"exit code {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: list[dict[str, Any]], size_mb: int, runs: int) -> str:
    base = next((r for r in results if r["config"] == "native_local_interpreter" and "times" in r), None)
    base_median = statistics.median(base["times"]) if base else None
    notes: list[str] = []
    rows = [
        f"W2: {size_mb} MB str context, 3 x llm_query_batched over 100 chunks, then SUBMIT; median of {runs} runs.",
        "",
        "| configuration | median s | min s | speed-up vs dspy.RLM + LocalInterpreter | host peak RSS MB | "
        "peak RSS host + sandboxes MB (sampled) | answer |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results:
        name = CONFIGS[r["config"]]
        if "times" not in r:
            rows.append(f"| {name} | - | - | - | - | - | did not run (see below) |")
            notes.append(f"- {name} did not run: {r['error'][:300]}")
            continue
        median = statistics.median(r["times"])
        ratio = f"{base_median / median:.1f}x" if base_median else "-"
        answer = r["answers"][0] if len(set(r["answers"])) == 1 else r["answers"]
        rows.append(
            f"| {name} | {median:.3f} | {min(r['times']):.3f} | {ratio} | {r['host_peak_mb']:.0f} | "
            f"{r['tree_peak_mb']:.0f} | {answer} |"
        )
    return "\n".join(rows + (["", *notes] if notes else []))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="W2 through DSPy: our module and interpreter vs dspy.RLM's.")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset of " + ", ".join(CONFIGS))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--readme", help="append the table and the command to this markdown file")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.runs, args.size_mb)))
        return
    results = []
    for config in args.configs.split(","):
        print(f"running {CONFIGS[config]} ...", file=sys.stderr, flush=True)
        results.append(measure(config, args.runs, args.size_mb))
    text = table(results, args.size_mb, args.runs)
    print(text)
    if args.readme:
        command = "python bench/bench_dspy.py " + " ".join(argv if argv is not None else sys.argv[1:])
        with open(args.readme, "a", encoding="utf-8") as out:
            out.write(f"\n## DSPy: W2 through dspy.RLM and rlm_plugins.dspy.RLM\n\n```\n{command}\n```\n\n{text}\n")


if __name__ == "__main__":
    main()
