"""`bench_engine.py --http`: every engine against one loopback OpenAI-compatible server in its own process.

W2 (3 fan-outs of 100 sub-calls) through ours (each transport), the official `rlms` and dspy.RLM; W3 (1,000
sub-calls at 100 ms, concurrency 32) through ours and through bare clients with no engine (the floor each HTTP
client reaches on this machine); and the client cost of one sub-call: bare clients, ours, and litellm.
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

from _http_server import W3_CALLS, W3_CODE, W3_LATENCY
from _workloads import w3_engine

HERE = Path(__file__).resolve().parent
KEY = "sk-bench"
W3_CONCURRENCY = 32


def start_server() -> tuple[subprocess.Popen, str]:
    """The scripted server in a child process (so its CPU time is not the client's), and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_http_server.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def ours(base: str, transport: str = "auto", **kwargs: Any) -> Any:
    """Our standalone RLM with both models on the loopback server, through `transport`."""
    from rlm_plugins import RLM

    models = {"transport": transport}
    options = {"max_iterations": 10, "max_llm_calls": 1000, "model_kwargs": models, "sub_model_kwargs": models}
    return RLM(model="openai/root", sub_model="openai/sub", api_base=base, api_key=KEY, **{**options, **kwargs})


def w2_ours(base: str, context: str, transport: str = "auto", **kwargs: Any) -> str:
    return ours(base, transport, **kwargs).completion(context, root_prompt="W2-BENCH ours").response


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


def _bare_clients(base: str) -> dict[str, Callable[[], Any]]:
    """Async one-call functions with no engine: (make) -> call(prompt), for the raw SDK and raw aiohttp."""
    import json

    import aiohttp
    import openai

    def sdk() -> Callable[[str], Any]:
        client = openai.AsyncOpenAI(
            base_url=base, api_key=KEY, max_retries=0, http_client=openai.DefaultAsyncHttpxClient()
        )
        return lambda p: client.chat.completions.create(model="sub", messages=[{"role": "user", "content": p}])

    def lean() -> Callable[[str], Any]:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

        async def call(prompt: str) -> Any:
            body = json.dumps({"model": "sub", "messages": [{"role": "user", "content": prompt}]}).encode()
            async with session.post(f"{base}/chat/completions", data=body, headers=headers) as response:
                return json.loads(await response.read())

        call.session = session  # type: ignore[attr-defined]
        return call

    return {"raw AsyncOpenAI (openai SDK)": sdk, "raw aiohttp": lean}


def w3_bare(make: Callable[[], Callable[[str], Any]]) -> float:
    """1,000 calls at concurrency 32 through a bare client, no engine: the floor of that client here."""

    async def run() -> float:
        call = make()
        gate = asyncio.Semaphore(W3_CONCURRENCY)

        async def one(i: int) -> None:
            async with gate:
                await call(f"w3 {i}")

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(W3_CALLS)))
        elapsed = time.perf_counter() - started
        if hasattr(call, "session"):
            await call.session.close()
        return elapsed

    return asyncio.run(run())


def w3_ours(base: str, transport: str, mode: str) -> tuple[float, float]:
    """(run seconds, batch seconds) of W3 through our RLM; the batch is timed inside the sandbox."""
    engine = ours(base, transport, max_concurrency=W3_CONCURRENCY, sandbox="local")
    started = time.perf_counter()
    if mode == "sync":
        result = engine.completion("x", root_prompt="W3-BENCH")
    else:
        result = asyncio.run(engine.acompletion("x", root_prompt="W3-BENCH"))
    elapsed = time.perf_counter() - started
    count, batch = result.response.split()
    assert count == str(W3_CALLS), result.response
    return elapsed, float(batch)


def w3_in_process(mode: str) -> tuple[float, float]:
    """(run seconds, batch seconds) of W3 with the sub-model in this process (a 100 ms sleep, no HTTP at all)."""
    engine = w3_engine(W3_CODE, mode, W3_CALLS, W3_LATENCY, W3_CONCURRENCY)
    started = time.perf_counter()
    result = engine.run("w3", "x") if mode == "sync" else asyncio.run(engine.arun("w3", "x"))
    elapsed = time.perf_counter() - started
    count, batch = result.response.split()
    assert count == str(W3_CALLS), result.response
    return elapsed, float(batch)


def w3(base: str, runs: int) -> dict[str, list[tuple[float, float]]]:
    """W3 over HTTP `runs` times per row, rows interleaved so load changes hit every row alike."""
    rows: dict[str, Callable[[], tuple[float, float]]] = {}
    for name, make in _bare_clients(base).items():
        rows[name] = lambda make=make: (w3_bare(make),) * 2
    for transport in ("http", "openai"):
        for mode in ("sync", "async"):
            rows[f"ours {mode}, {transport} transport"] = lambda t=transport, m=mode: w3_ours(base, t, m)
    for mode in ("sync", "async"):
        rows[f"ours {mode}, in-process sub-model (no HTTP)"] = lambda m=mode: w3_in_process(m)
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
    for fn in rows.values():
        fn()
    for _ in range(runs):
        for name, fn in rows.items():
            out[name].append(fn())
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

    def sub(transport: str) -> Callable[[str], Any]:
        return ChatSubModel(ChatModel("openai/sub", api_base=base, api_key=KEY, transport=transport)).query

    clients: dict[str, Callable[[str], Any]] = {
        "raw openai SDK": lambda p: raw.chat.completions.create(model="sub", messages=[{"role": "user", "content": p}]),
        "rlm-plugins ChatSubModel (http transport, the default here)": sub("http"),
        "rlm-plugins ChatSubModel (openai SDK transport)": sub("openai"),
        "rlm-plugins ChatSubModel (litellm transport)": sub("litellm"),
        "litellm.completion": lambda p: litellm.completion(
            model="openai/sub", messages=[{"role": "user", "content": p}], api_base=base, api_key=KEY
        ),
    }
    return {name: _per_call(fn, calls) for name, fn in clients.items()}


def _spread(times: list[float]) -> str:
    return f"{statistics.median(times):.3f} | {min(times):.3f}–{max(times):.3f}"


def main(runs: int, context: str, only: str = "all") -> None:
    proc, base = start_server()
    try:
        print(f"loopback server {base} (own process); context {len(context) / 1e6:.0f} MB; {runs} runs each\n")
        if only in ("all", "w2"):
            _report_w2(runs, context, base)
        if only in ("all", "calls"):
            _report_calls(base)
        if only in ("all", "w3"):
            _report_w3(runs, base)
    finally:
        proc.stdin.close()
        proc.wait(10)


def _report_w2(runs: int, context: str, base: str) -> None:
    """W2 `runs` times per engine (after one warm-up each), engines interleaved run by run."""
    engines: dict[str, Callable[[], str]] = {
        "rlm-plugins RLM (local sandbox, http transport: the default with api_base)": lambda: w2_ours(base, context),
        "rlm-plugins RLM, openai SDK transport": lambda: w2_ours(base, context, "openai"),
        "rlm-plugins RLM, every call through litellm, no memo (before)": lambda: w2_ours(
            base, context, "litellm", memo=False
        ),
        "official rlms (local, openai SDK)": lambda: w2_official(base, context),
        "dspy.RLM + LocalInterpreter (dspy.LM over litellm)": lambda: w2_dspy(base, context),
    }
    times: dict[str, list[float]] = {name: [] for name in engines}
    answers: dict[str, str] = {}
    for name, fn in engines.items():
        try:
            answers[name] = fn()
        except Exception as exc:
            answers[name] = f"failed: {type(exc).__name__}: {str(exc)[:80]}"
    for _ in range(runs):
        for name, fn in engines.items():
            if not answers[name].startswith("failed"):
                started = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - started)
    print("| W2 over HTTP | median s | min–max s | vs ours | answer |\n| --- | --- | --- | --- | --- |")
    first = statistics.median(next(iter(times.values())))
    for name, seconds in times.items():
        if not seconds:
            print(f"| {name} | - | - | - | {answers[name]} |")
            continue
        print(f"| {name} | {_spread(seconds)} | {statistics.median(seconds) / first:.2f}x | {answers[name]} |")
    official = times["official rlms (local, openai SDK)"]
    ratios = [b / a for a, b in zip(next(iter(times.values())), official, strict=True)]
    if ratios:
        print(f"\nofficial / ours, run by run: {', '.join(f'{r:.2f}x' for r in ratios)}")


def _report_calls(base: str) -> None:
    print("\n| one sub-call, sequential | wall ms | client CPU ms | CPU vs raw SDK |\n| --- | --- | --- | --- |")
    results = per_call_overhead(base)
    raw_cpu = results["raw openai SDK"][1]
    for name, (wall, cpu) in results.items():
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {cpu / raw_cpu:.2f}x |")


def _report_w3(runs: int, base: str) -> None:
    ideal = math.ceil(W3_CALLS / W3_CONCURRENCY) * W3_LATENCY
    shape = f"{W3_CALLS:,} calls x {W3_LATENCY * 1000:.0f} ms at concurrency {W3_CONCURRENCY}"
    print(f"\nW3 over HTTP: {shape}, ideal {ideal:.2f} s")
    print("(run: the whole RLM run, sandbox start and root turn included; batch: the llm_query_batched call alone,")
    print(" timed in the sandbox; bare clients have no engine, so their run is their batch)\n")
    print("| W3 | run median s | run min–max s | run / ideal | batch median s | batch min–max s | batch / ideal |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, results in w3(base, runs).items():
        run, batch = [r[0] for r in results], [r[1] for r in results]
        run_m, batch_m = statistics.median(run), statistics.median(batch)
        print(f"| {name} | {_spread(run)} | {run_m / ideal:.3f}x | {_spread(batch)} | {batch_m / ideal:.3f}x |")
