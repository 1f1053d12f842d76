"""The OpenAI-compatible server: `python bench/bench_server.py [--runs 200] [--sessions 64] [--sandbox local]`.

- Overhead per request: a 3-step scripted run (print, one `llm_query`, FINAL) driven by the engine directly
  (`engine.arun`) and through the server (`POST /v1/chat/completions` with httpx on loopback, keep-alive), with
  the same scripted root policy, sub-model and `inprocess` sandbox; the difference of the medians is what the
  server adds (HTTP, JSON, validation, session glue, metrics, logs). The server runs in a thread of this process.
- Concurrency: `--sessions` conversations at once, each with two rounds of tool-call continuation (three requests:
  tool_calls, tool_calls, answer) in `--sandbox`; errors, latency p50/p95 of every request, and the memory per
  paused session (this process's RSS plus its sandbox processes', measured when every conversation has paused
  once, minus the baseline, divided by the sessions). Afterwards: runs in flight, paused runs left in the store
  and sandbox processes left (all must be 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import uvicorn

from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.engine import Engine
from rlm_plugins.repl.factory import sandbox_factory
from rlm_plugins.server import ModelConfig, ServerConfig, create_app

KEY = "sk-bench"


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


THREE_STEPS = [repl("x = 1\nprint(x)"), repl("y = llm_query('hi')\nprint(y)"), repl("FINAL(str(x) + y)")]
TOOLS_SCRIPT = [
    repl("kept = 7\nlookup(key='a')"),
    repl("lookup(key='b')"),
    repl("FINAL(str(kept) + ''.join(sorted(str(v) for v in tool_results.values())))"),
]
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
    },
}


def scripted(messages: list[dict[str, Any]]) -> str:
    """Root replies by turn; the tools script when the question says so."""
    first = next(m["content"] for m in messages if m["role"] == "user")
    script = TOOLS_SCRIPT if "[tools]" in first else THREE_STEPS
    turn = sum(1 for m in messages if m["role"] == "assistant")
    return script[min(turn, len(script) - 1)]


def ports() -> tuple[ChatPolicy, CallableSubModel]:
    return ChatPolicy(scripted, model="scripted-root"), CallableSubModel(lambda prompt: "!", name="scripted-sub")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(sandbox: str, sessions: int) -> tuple[uvicorn.Server, threading.Thread, str, Any]:
    policy, sub = ports()
    config = ServerConfig(
        api_keys=[KEY],
        models={"bench": ModelConfig(policy=policy, sub_model=sub, sandbox=sandbox)},
        max_concurrent_runs=sessions,
        max_queued_runs=sessions,
        max_sessions=sessions * 4,
        port=free_port(),
    )
    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=config.port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    return server, thread, f"http://127.0.0.1:{config.port}/v1", app.state.rlm


async def overhead(runs: int) -> dict[str, float]:
    """Median seconds of the 3-step run through the engine and through the server."""
    policy, sub = ports()
    engine = Engine(policy, sub, sandbox_factory("inprocess"))
    direct = []
    for _ in range(runs):
        started = time.perf_counter()
        result = await engine.arun("bench")
        direct.append(time.perf_counter() - started)
        assert result.response == "1!", result
    server, thread, base, _ = start_server("inprocess", 4)
    served = []
    try:
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {KEY}"}) as http:
            body = {"model": "bench", "messages": [{"role": "user", "content": "bench"}]}
            for _ in range(runs):
                started = time.perf_counter()
                response = await http.post("/chat/completions", json=body)
                served.append(time.perf_counter() - started)
                assert response.json()["choices"][0]["message"]["content"] == "1!", response.text
    finally:
        server.should_exit = True
        thread.join(30)
    return {"direct": statistics.median(direct), "served": statistics.median(served)}


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def total_rss_kb() -> int:
    me = os.getpid()
    return rss_kb(me) + sum(rss_kb(pid) for pid in descendants(me))


async def conversation(http: httpx.AsyncClient, i: int, latencies: list[float], gate: Gate) -> None:
    """One conversation: question, two rounds of tool results, answer; waits at `gate` after the first pause."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"[tools] conversation {i}"}]
    for round_ in range(3):
        started = time.perf_counter()
        response = await http.post(
            "/chat/completions", json={"model": "bench", "messages": messages, "tools": [LOOKUP]}
        )
        latencies.append(time.perf_counter() - started)
        response.raise_for_status()
        choice = response.json()["choices"][0]
        if round_ == 2:
            assert choice["message"]["content"] == "7ab", choice
            return
        assert choice["finish_reason"] == "tool_calls", choice
        message = choice["message"]
        results = [
            {"role": "tool", "tool_call_id": c["id"], "content": c["function"]["arguments"][-3]}
            for c in message["tool_calls"]
        ]
        messages += [message, *results]
        if round_ == 0:
            await gate.arrive()


class Gate:
    """Holds every conversation after its first pause: `all_paused` is set when all are, `go` releases them."""

    def __init__(self, n: int) -> None:
        self.n, self.count = n, 0
        self.all_paused, self.go = asyncio.Event(), asyncio.Event()

    async def arrive(self) -> None:
        self.count += 1
        if self.count == self.n:
            self.all_paused.set()
        await self.go.wait()


async def concurrency(sessions: int, sandbox: str) -> dict[str, Any]:
    baseline = total_rss_kb()
    server, thread, base, state = start_server(sandbox, sessions)
    latencies: list[float] = []
    errors = 0
    try:
        limits = httpx.Limits(max_connections=sessions * 2)
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=600) as http:
            gate = Gate(sessions)
            tasks = [asyncio.ensure_future(conversation(http, i, latencies, gate)) for i in range(sessions)]
            waiter = asyncio.ensure_future(gate.all_paused.wait())
            await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)  # a task ends early: error
            await asyncio.sleep(0.5)
            paused_kb = total_rss_kb() - baseline
            paused_store = len(state.runner.store)
            gate.go.set()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            errors = sum(1 for o in outcomes if isinstance(o, BaseException))
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    print("error:", repr(outcome)[:300])
        left = {"in_flight": state.limiter.running, "paused_left": len(state.runner.store)}
    finally:
        server.should_exit = True
        thread.join(60)
    time.sleep(1.0)
    left["sandbox_processes_left"] = len(descendants(os.getpid()))
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50": statistics.median(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "paused_sessions": paused_store,
        "kb_per_paused_session": paused_kb / sessions,
        **left,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--sandbox", default="local")
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    o = asyncio.run(overhead(args.runs))
    print(f"3-step scripted run, inprocess sandbox, {args.runs} runs each (median):")
    print(f"  engine directly: {o['direct'] * 1000:.2f} ms")
    print(f"  through server:  {o['served'] * 1000:.2f} ms")
    print(f"  server overhead: {(o['served'] - o['direct']) * 1000:.2f} ms per request")
    c = asyncio.run(concurrency(args.sessions, args.sandbox))
    print(f"{args.sessions} concurrent conversations x 3 requests (2 tool continuations), sandbox={args.sandbox}:")
    print(f"  requests {c['requests']}, errors {c['errors']}")
    print(f"  latency p50 {c['p50'] * 1000:.0f} ms, p95 {c['p95'] * 1000:.0f} ms")
    print(f"  paused sessions held {c['paused_sessions']}: {c['kb_per_paused_session'] / 1024:.1f} MB each (RSS)")
    print(
        f"  afterwards: in flight {c['in_flight']}, paused left {c['paused_left']}, "
        f"sandbox processes left {c['sandbox_processes_left']}"
    )


if __name__ == "__main__":
    main()
