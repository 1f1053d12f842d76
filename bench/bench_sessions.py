"""Sessions and paused runs: `python bench/bench_sessions.py [--runs 5] [--quick]`.

- Second-turn overhead: the W2 work (3 x 100-way `llm_query_batched` over a 100 MB context, then FINAL) as a
  one-shot run (new sandbox, context loaded) and as the second turn of a `Session` (the sandbox is running; the
  turn loads its own context as `context_1`, the first turn's messages as `history_0`, and binds the aliases);
  beside it the official `rlms` package, one-shot and as the second call of `RLM(persistent=True)`.
- Paused-run size: the JSON of a run paused before its 31st root turn (30 steps of history), with short REPL
  outputs and with outputs at the 10,000-character cap.
- Resume latency from Redis: `store.save(paused)` and `store.resume(engine, key)` (GETDEL, JSON decode, rebuild
  the run, reattach its held local sandbox) against a redis-server started on a free loopback port.
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _workloads import fence, median_time, official_rlm, root_replies, scripted_root, w2_engine, w2_setup

from rlm_plugins.core import PAUSE, Act, Engine, Limits, RedisSessionStore, Session, drive
from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.repl.factory import sandbox_factory


def second_turn(engine: Engine, context: str) -> float:
    """Seconds the second turn of a fresh session takes (the first turn is not timed)."""
    with Session(engine) as session:
        session.completion(context, root_prompt="bench")
        started = time.perf_counter()
        result = session.completion(context, root_prompt="bench")
        elapsed = time.perf_counter() - started
    assert result.response == "done", result
    return elapsed


OFFICIAL_FINAL = "answer['content'] = 'done'\nanswer['ready'] = True"


def official_second_turn(context: str) -> float:
    """The same for the official `rlms` package with `persistent=True` (local environment)."""
    rlm = official_rlm(root_replies(False, final=OFFICIAL_FINAL), persistent=True)
    try:
        rlm.completion(context)
        started = time.perf_counter()
        rlm.completion(context)
        return time.perf_counter() - started
    finally:
        rlm.close()


def thirty_step_engine(output_chars: int) -> Engine:
    code = f"print('x' * {output_chars})"
    return Engine(
        ChatPolicy(scripted_root([fence(code)] * 40), model="scripted"),
        CallableSubModel(lambda p: "ok", name="instant"),
        sandbox_factory("local"),
        limits=Limits(max_iterations=40),
    )


def paused_after_30(engine: Engine):
    return drive(
        engine.new_run("bench", "ctx"),
        pause=lambda run, op: PAUSE if isinstance(op, Act) and len(run.history) == 30 else None,
    )


def start_redis() -> tuple[subprocess.Popen, str, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is missing: apt-get install -y redis-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="rlm-bench-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    store = RedisSessionStore(url)
    for _ in range(200):
        try:
            store.client.ping()
            break
        except Exception:
            time.sleep(0.05)
    return proc, url, workdir


def main() -> None:
    runs, context = w2_setup(__doc__ or "")
    engine = w2_engine()
    print(f"context: {len(context) / 1e6:.0f} MB, {runs} runs each (medians)")
    one_shot, _ = median_time(lambda: engine.run("bench", context), runs)
    turns = [second_turn(engine, context) for _ in range(runs)]
    turn2 = statistics.median(turns)
    print(f"ours, one-shot run:      {one_shot:.3f} s")
    print(f"ours, second turn:       {turn2:.3f} s ({turn2 / one_shot:.2f}x the one-shot; {turn2 - one_shot:+.3f} s)")
    peer = official_rlm(root_replies(False, final=OFFICIAL_FINAL))
    official_once, _ = median_time(lambda: peer.completion(context), runs)
    official_turn2 = statistics.median([official_second_turn(context) for _ in range(runs)])
    print(f"official, one-shot run:  {official_once:.3f} s")
    print(f"official, second turn:   {official_turn2:.3f} s ({official_turn2 / official_once:.2f}x its one-shot)")

    for chars in (100, 10_000):
        paused = paused_after_30(thirty_step_engine(chars))
        text = json.dumps(paused.to_dict(ttl=60))
        print(f"paused run, 30 steps, {chars:>6,}-char outputs: {len(text):>9,} bytes of JSON")
        drive(paused.run.engine.resume(json.loads(text)))

    proc, url, workdir = start_redis()
    try:
        store = RedisSessionStore(url)
        small = thirty_step_engine(100)
        saves, resumes = [], []
        for _ in range(max(runs, 10)):
            paused = paused_after_30(small)
            started = time.perf_counter()
            key = store.save(paused, ttl=60)
            saves.append(time.perf_counter() - started)
            started = time.perf_counter()
            run = store.resume(small, key)
            resumes.append(time.perf_counter() - started)
            drive(run)
        print(f"Redis save (30 steps):   {statistics.median(saves) * 1000:.2f} ms median")
        print(f"Redis resume (30 steps): {statistics.median(resumes) * 1000:.2f} ms median")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
