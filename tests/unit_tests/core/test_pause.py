"""Pause, persist as JSON, resume: in this process, refused clearly elsewhere (local), stores with atomic takes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from rlm_plugins.core.drivers import adrive, drive
from rlm_plugins.core.steps import PAUSE, Act, Paused
from rlm_plugins.core.store import MemorySessionStore, RedisSessionStore
from rlm_plugins.errors import SandboxUnavailableError, SessionExpiredError
from tests.unit_tests.core._resume_elsewhere import CONTINUE
from tests.unit_tests.core._scripted import by_marker, engine
from tests.unit_tests.repl.conftest import wait_until_gone


def pause_before_second_turn(run, op):
    return PAUSE if isinstance(op, Act) and len(run.history) == 1 else None


def paused_run(sandbox: str = "inprocess", **options) -> tuple[Paused, object]:
    eng = engine(by_marker(CONTINUE), sandbox=sandbox, sandbox_options=options)
    paused = drive(eng.new_run("pause-me", "ctx"), pause_before_second_turn)
    assert isinstance(paused, Paused)
    return paused, eng


def resume_elsewhere(data: dict, tmp_path) -> dict:
    """Resume `data` in a fresh Python process (E2B in debug mode reaches the fake envd); its JSON reply."""
    path = tmp_path / "paused.json"
    path.write_text(json.dumps(data))
    out = subprocess.run(
        [sys.executable, "-m", "tests.unit_tests.core._resume_elsewhere", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "E2B_DEBUG": "true"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("sandbox", ["inprocess", "local"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_pause_to_json_and_resume(sandbox: str, mode: str) -> None:
    eng = engine(by_marker(CONTINUE), sandbox=sandbox)
    run = eng.new_run("pause-me", "ctx")
    if mode == "sync":
        paused = drive(run, pause_before_second_turn)
    else:
        paused = asyncio.run(adrive(run, pause_before_second_turn))
    assert isinstance(paused, Paused) and isinstance(paused.op, Act)
    paused.pending = [{"id": "call_1", "name": "lookup", "args": {"q": "x"}}]
    data = json.loads(json.dumps(paused.to_dict()))
    assert data["pending"][0]["id"] == "call_1"
    assert [step["runs"][0]["code"] for step in data["history"]] == ["x = 41"]
    assert data["budget"]["usage"]["root"]["calls"] == 1
    resumed = eng.resume(data)
    result = drive(resumed) if mode == "sync" else asyncio.run(adrive(resumed))
    assert (result.response, result.finish_reason, result.iterations) == ("42", "final", 2)
    assert result.usage["root"].calls == 2


def test_local_run_resumed_in_another_process_is_refused_clearly(tmp_path) -> None:
    paused, eng = paused_run("local")
    data = paused.to_dict()
    reply = resume_elsewhere(data, tmp_path)
    assert reply["error"] == "SandboxUnavailableError"
    assert "cannot move between processes" in reply["message"] and "sandbox='e2b'" in reply["message"]
    assert drive(eng.resume(data)).response == "42"  # here, where it paused, it still resumes


def test_paused_sandbox_is_closed_when_its_ttl_ends() -> None:
    paused, eng = paused_run("local")
    pid = paused.run.sandbox._proc.pid
    store = MemorySessionStore()
    key = store.save(paused, ttl=0.1)
    time.sleep(0.2)
    with pytest.raises(SessionExpiredError, match="time-to-live"):
        store.resume(eng, key)
    assert wait_until_gone(pid) == set()


def test_resumed_data_cannot_resume_twice() -> None:
    paused, eng = paused_run()
    data = paused.to_dict()
    drive(eng.resume(data))
    with pytest.raises(SandboxUnavailableError, match="already resumed"):
        eng.resume(data)


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        return MemorySessionStore()
    return RedisSessionStore(request.getfixturevalue("redis_url"))


def test_two_concurrent_resumes_exactly_one_wins(store) -> None:
    paused, eng = paused_run("local")
    key = store.save(paused, ttl=60)
    gate = threading.Barrier(2)
    outcomes: list[object] = []

    def resume() -> None:
        gate.wait()
        try:
            outcomes.append(store.resume(eng, key))
        except SessionExpiredError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    runs = [o for o in outcomes if not isinstance(o, Exception)]
    errors = [o for o in outcomes if isinstance(o, SessionExpiredError)]
    assert (len(runs), len(errors)) == (1, 1)
    assert drive(runs[0]).response == "42"


async def test_async_store_round_trip(store) -> None:
    paused, eng = paused_run("local")
    key = await store.asave(paused, ttl=60)
    run = await store.aresume(eng, key)
    with pytest.raises(SessionExpiredError):
        await store.aresume(eng, key)
    assert (await adrive(run)).response == "42"


def test_redis_ttl_expires(redis_url) -> None:
    store = RedisSessionStore(redis_url)
    store.put("short", {"a": 1}, 0.05)
    deadline = time.monotonic() + 10
    while store.client.exists(store.prefix + "short") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.take("short") is None


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_e2b_run_resumes_in_a_fresh_process(mode: str, envd, e2b_options, tmp_path) -> None:
    eng = engine(by_marker(CONTINUE), sandbox="e2b", sandbox_options=e2b_options)
    run = eng.new_run("pause-me", "ctx")

    async def pause_and_save() -> dict:
        return (await adrive(run, pause_before_second_turn)).to_dict(ttl=60)

    data = drive(run, pause_before_second_turn).to_dict(ttl=60) if mode == "sync" else asyncio.run(pause_and_save())
    assert data["sandbox"]["remote"]["sandbox_id"] and envd.live_processes() == 1
    assert resume_elsewhere(data, tmp_path) == {"response": "42", "finish_reason": "final"}
