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
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import uvicorn
from _workloads import _tree_rss

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


def app_config(sandbox: str, sessions: int, port: int) -> ServerConfig:
    policy, sub = ports()
    return ServerConfig(
        api_keys=[KEY],
        models={"bench": ModelConfig(policy=policy, sub_model=sub, sandbox=sandbox)},
        max_concurrent_runs=sessions,
        max_queued_runs=sessions,
        max_sessions=sessions * 4,
        port=port,
    )


def serve_here(sandbox: str, sessions: int, port: int) -> None:
    """The server process: the scripted models served on `port` until SIGTERM."""
    config = app_config(sandbox, sessions, port)
    uvicorn.run(create_app(config), host="127.0.0.1", port=port, log_config=None, access_log=False)


class ServerProcess:
    """This script with `--serve`: the server in its own process, so client and server share no GIL."""

    def __init__(self, sandbox: str, sessions: int) -> None:
        self.port = free_port()
        command = [sys.executable, __file__, "--serve", str(self.port), "--sandbox", sandbox]
        command += ["--sessions", str(sessions)]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}/v1"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and self.proc.poll() is None, "the bench server did not start"
                time.sleep(0.1)

    def metric(self, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


async def overhead(runs: int) -> dict[str, float]:
    """Median seconds of the 3-step run through the engine and through the server, and of GET /healthz."""
    policy, sub = ports()
    engine = Engine(policy, sub, sandbox_factory("inprocess"))
    direct = []
    for _ in range(runs):
        started = time.perf_counter()
        result = await engine.arun("bench")
        direct.append(time.perf_counter() - started)
        assert result.response == "1!", result
    server = ServerProcess("inprocess", 4)
    served: list[float] = []
    health: list[float] = []
    try:
        async with httpx.AsyncClient(base_url=server.base, headers={"Authorization": f"Bearer {KEY}"}) as http:
            body = {"model": "bench", "messages": [{"role": "user", "content": "bench"}]}
            for _ in range(runs):
                started = time.perf_counter()
                response = await http.post("/chat/completions", json=body)
                served.append(time.perf_counter() - started)
                assert response.json()["choices"][0]["message"]["content"] == "1!", response.text
            for _ in range(runs):
                started = time.perf_counter()
                (await http.get(server.base.removesuffix("/v1") + "/healthz")).raise_for_status()
                health.append(time.perf_counter() - started)
    finally:
        server.stop()
    return {
        "direct": statistics.median(direct),
        "served": statistics.median(served),
        "health": statistics.median(health),
    }


def tree_rss_kb(pid: int) -> int:
    """The RSS of `pid` and its descendants, in KiB."""
    return _tree_rss(pid) // 1024


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
    server = ServerProcess(sandbox, sessions)
    baseline = tree_rss_kb(server.proc.pid)
    latencies: list[float] = []
    try:
        limits = httpx.Limits(max_connections=sessions * 2)
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=server.base, headers=headers, limits=limits, timeout=600) as http:
            gate = Gate(sessions)
            tasks = [asyncio.ensure_future(conversation(http, i, latencies, gate)) for i in range(sessions)]
            waiter = asyncio.ensure_future(gate.all_paused.wait())
            await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)  # a task ends early: error
            await asyncio.sleep(0.5)
            paused_kb = tree_rss_kb(server.proc.pid) - baseline
            paused = server.metric("rlm_paused_runs")
            gate.go.set()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        for error in errors:
            print("error:", repr(error)[:300])
        time.sleep(1.0)
        left = {
            "in_flight": server.metric("rlm_runs_in_flight"),
            "paused_left": server.metric("rlm_paused_runs"),
            "sandbox_processes_left": len(children_of(server.proc.pid)),
        }
    finally:
        server.stop()
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "p50": statistics.median(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "paused_sessions": paused,
        "kb_per_paused_session": paused_kb / sessions,
        **left,
    }


def children_of(pid: int) -> list[int]:
    """Live descendants of `pid`."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path(f"/proc/{parent}/task").glob("*/children"):
            kids = [int(k) for k in entry.read_text().split()]
            found += kids
            frontier += kids
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--sandbox", default="local")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if args.serve:
        serve_here(args.sandbox, args.sessions, args.serve)
        return
    o = asyncio.run(overhead(args.runs))
    print(f"3-step scripted run, inprocess sandbox, {args.runs} runs each (median):")
    print(f"  engine directly: {o['direct'] * 1000:.2f} ms")
    print(f"  through server:  {o['served'] * 1000:.2f} ms")
    print(f"  server overhead: {(o['served'] - o['direct']) * 1000:.2f} ms per request")
    print(f"  (GET /healthz round trip, the HTTP floor of this client and server: {o['health'] * 1000:.2f} ms)")
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
