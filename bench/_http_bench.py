"""`bench_engine.py --http`: every engine against one loopback OpenAI-compatible server in its own process.

W2 (3 fan-outs of 100 sub-calls) through ours, the official `rlms` and dspy.RLM; W3 (1,000 sub-calls at 100 ms,
concurrency 32) through ours; and the client cost of one sub-call: the raw `openai` SDK, ours, and litellm.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _http_server import W3_CALLS, W3_LATENCY
from _workloads import median_time

HERE = Path(__file__).resolve().parent
KEY = "sk-bench"


def start_server() -> tuple[subprocess.Popen, str]:
    """The scripted server in a child process (so its CPU time is not the client's), and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_http_server.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def ours(base: str, **kwargs: Any) -> Any:
    from rlm_plugins import RLM

    options = {"max_iterations": 10, "max_llm_calls": 1000, **kwargs}
    return RLM(model="openai/root", sub_model="openai/sub", api_base=base, api_key=KEY, **options)


def w2_ours(base: str, context: str) -> str:
    return ours(base).completion(context, root_prompt="W2-BENCH ours").response


def w2_ours_litellm(base: str, context: str) -> str:
    """Ours with every model call through litellm, as before the transports (and memoisation) existed."""
    engine = ours(base, model_kwargs={"transport": "litellm"}, memo=False)
    return engine.completion(context, root_prompt="W2-BENCH ours").response


def w2_official(base: str, context: str) -> str:
    import rlm

    engine = rlm.RLM(
        backend="openai",
        backend_kwargs={"model_name": "root", "base_url": base, "api_key": KEY},
        other_backends=["openai"],
        other_backend_kwargs=[{"model_name": "sub", "base_url": base, "api_key": KEY}],
        environment="local",
        max_iterations=10,
    )
    return engine.completion(context, root_prompt="W2-BENCH official").response


def w2_dspy(base: str, context: str) -> str:
    import dspy
    from dspy.primitives.local_interpreter import LocalInterpreter

    root = dspy.LM("openai/root", api_base=base, api_key=KEY, cache=False)
    sub = dspy.LM("openai/sub", api_base=base, api_key=KEY, cache=False)
    program = dspy.RLM(
        "context, query -> answer", max_iters=10, max_llm_calls=1000, sub_lm=sub, interpreter_factory=LocalInterpreter
    )
    with dspy.context(lm=root):
        return program(context=context, query="W2-BENCH dspy").answer


def w3_raw(base: str) -> float:
    """The floor over this server: 1,000 raw `AsyncOpenAI` calls at concurrency 32, no engine at all."""
    import openai

    async def run() -> float:
        client = openai.AsyncOpenAI(
            base_url=base, api_key=KEY, max_retries=0, http_client=openai.DefaultAsyncHttpxClient()
        )
        gate = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with gate:
                await client.chat.completions.create(model="sub", messages=[{"role": "user", "content": f"w3 {i}"}])

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(W3_CALLS)))
        return time.perf_counter() - started

    return asyncio.run(run())


def w3(base: str) -> dict[str, float]:
    """W3 over HTTP, sync and async; each answer must count all 1,000 sub-calls."""
    out = {"ideal": math.ceil(W3_CALLS / 32) * W3_LATENCY, "raw": w3_raw(base)}
    engine = ours(base, max_concurrency=32, sandbox="local")
    for mode in ("sync", "async"):
        started = time.perf_counter()
        if mode == "sync":
            result = engine.completion("x", root_prompt="W3-BENCH")
        else:
            result = asyncio.run(engine.acompletion("x", root_prompt="W3-BENCH"))
        assert result.response == str(W3_CALLS), result.response
        out[mode] = time.perf_counter() - started
    return out


def _per_call(fn: Callable[[str], Any], calls: int) -> tuple[float, float]:
    """(wall ms, client CPU ms) per call, median of 3 rounds of `calls` sequential calls after a warm-up."""
    fn("warm-up")
    walls, cpus = [], []
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(calls):
            fn(f"prompt {i}")
        walls.append((time.perf_counter() - wall) * 1000 / calls)
        cpus.append((time.process_time() - cpu) * 1000 / calls)
    return statistics.median(walls), statistics.median(cpus)


def per_call_overhead(base: str, calls: int = 300) -> dict[str, tuple[float, float]]:
    """The client's cost of one sub-call, sequentially, for the raw SDK and each wrapper over the same server."""
    import litellm
    import openai

    from rlm_plugins.models import ChatModel, ChatSubModel

    raw = openai.OpenAI(base_url=base, api_key=KEY, max_retries=0)
    sub = ChatSubModel(ChatModel("openai/sub", api_base=base, api_key=KEY))
    lite = ChatSubModel(ChatModel("openai/sub", api_base=base, api_key=KEY, transport="litellm"))
    clients: dict[str, Callable[[str], Any]] = {
        "raw openai SDK": lambda p: raw.chat.completions.create(model="sub", messages=[{"role": "user", "content": p}]),
        "rlm-plugins ChatSubModel (openai transport)": sub.query,
        "rlm-plugins ChatSubModel (litellm transport)": lite.query,
        "litellm.completion": lambda p: litellm.completion(
            model="openai/sub", messages=[{"role": "user", "content": p}], api_base=base, api_key=KEY
        ),
    }
    return {name: _per_call(fn, calls) for name, fn in clients.items()}


def main(runs: int, context: str) -> None:
    proc, base = start_server()
    try:
        _report(runs, context, base)
    finally:
        proc.stdin.close()
        proc.wait(10)


def _report(runs: int, context: str, base: str) -> None:
    print(f"loopback server {base} (own process); context {len(context) / 1e6:.0f} MB; {runs} runs each\n")
    print("| W2 over HTTP | median s | vs ours | answer |\n| --- | --- | --- | --- |")
    base_time = None
    for name, fn in (
        ("rlm-plugins RLM (local sandbox, openai transport)", w2_ours),
        ("rlm-plugins RLM, every call through litellm (before)", w2_ours_litellm),
        ("official rlms (local, openai SDK)", w2_official),
        ("dspy.RLM + LocalInterpreter (dspy.LM over litellm)", w2_dspy),
    ):
        try:
            seconds, answer = median_time(lambda fn=fn: fn(base, context), runs)
        except Exception as exc:
            print(f"| {name} | - | - | failed: {type(exc).__name__}: {str(exc)[:80]} |")
            continue
        base_time = base_time or seconds
        print(f"| {name} | {seconds:.3f} | {seconds / base_time:.2f}x | {answer} |")
    print("\n| one sub-call, sequential | wall ms | client CPU ms | CPU vs raw SDK |\n| --- | --- | --- | --- |")
    results = per_call_overhead(base)
    raw_cpu = results["raw openai SDK"][1]
    for name, (wall, cpu) in results.items():
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {cpu / raw_cpu:.2f}x |")
    result = w3(base)
    ideal, raw = result["ideal"], result["raw"]
    print(f"\nW3 over HTTP (1,000 calls x 100 ms, concurrency 32): ideal {ideal:.2f}s; raw AsyncOpenAI {raw:.2f}s")
    for mode in ("sync", "async"):
        seconds = result[mode]
        print(f"- ours {mode}: {seconds:.2f}s = {seconds / ideal:.3f}x ideal, {seconds / raw:.3f}x the raw SDK")
