"""Abandoned work never holds the host: after a run ends at `max_time` while a sub-model call hangs, `run()`
returns and the host process (and `asyncio.run`) can exit; also after `asyncio.wait_for` gives up on a run whose
root model hangs. Each case runs in a subprocess that must exit within a generous bound (a hung call never ends).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
SCRIPT = """
import asyncio, sys, threading
from rlm_plugins.core.budget import Limits
from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.engine import Engine
from rlm_plugins.repl.factory import sandbox_factory

mode, kind = sys.argv[1], sys.argv[2]
never = threading.Event()


def hang(prompt):
    never.wait()


def root(messages):
    if mode == "root-hangs":
        never.wait()
    if "no more code will run" in messages[-1]["content"]:
        return "gave up"
    if mode == "batch":
        return "```repl\\nprint(llm_query_batched(['a', 'b', 'c']))\\n```"
    return "```repl\\nprint(llm_query('hello'))\\n```"


options = {"isolation": "none"} if kind == "local" else {}
engine = Engine(
    ChatPolicy(root, model="root"),
    CallableSubModel(hang, name="hang"),
    sandbox_factory(kind, **options),
    limits=Limits(max_time=2, max_iterations=3),
    exec_timeout=30,
)
if mode in ("sync", "batch"):
    result = engine.run("q", "context")
    print("returned", result.finish_reason, flush=True)
elif mode == "async":
    result = asyncio.run(engine.arun("q", "context"))
    print("returned", result.finish_reason, flush=True)
else:

    async def main():
        try:
            await asyncio.wait_for(engine.arun("q", "context"), 2)
        except asyncio.TimeoutError:
            print("returned timeout", flush=True)

    asyncio.run(main())
"""
EXIT_WITHIN = 60.0


@pytest.mark.parametrize("kind", ["local", "inprocess"])
@pytest.mark.parametrize("mode", ["sync", "batch", "async", "root-hangs"])
def test_the_host_exits_though_a_call_hangs(mode: str, kind: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, mode, kind],
            capture_output=True,
            text=True,
            timeout=EXIT_WITHIN,
            env=env,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the host process did not exit after the run returned; it printed {exc.stdout!r}")
    assert done.stdout.startswith("returned"), done.stderr[-2000:]
    assert done.returncode == 0, done.stderr[-2000:]
