"""A LangGraph app restarted between two turns of a thread: each turn runs in its own process, with a SQLite
checkpointer and a session store that outlive it (Redis, or the LangGraph store in the same SQLite file). An e2b
sandbox (the fake envd) resumes with the REPL variables of the first turn; a local one cannot leave its process,
so the second turn starts a new session and says why in the answer's metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.sqlite import SqliteStore
from pytest_socket import enable_socket

from rlm_plugins.core.store import RedisSessionStore
from rlm_plugins.langchain import ChatRLM, LangGraphSessionStore
from tests.unit_tests.langchain.scripted import ScriptedSub

pytestmark = pytest.mark.filterwarnings("ignore:E2BSandbox uploads the driver")

ROOT = Path(__file__).resolve().parents[3]
REMEMBER = "saved = 41\nFINAL('noted')"
RECALL = "try:\n    FINAL(f'{saved + 1}')\nexcept NameError:\n    FINAL('nothing saved')"


@pytest.fixture(autouse=True)
def _loopback_allowed():
    """The E2B SDK and Redis talk to servers on 127.0.0.1."""
    enable_socket()


def process(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one turn in a new Python process and return what it printed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration_tests.langchain.langgraph_process", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(params=["redis", "langgraph"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Where the sessions persist: a Redis server, or the LangGraph store in the checkpointer's SQLite file.

    Yields the part of the process spec that says so, and `closer`: a session store over the same data for the
    test process."""
    db = str(tmp_path / "graph.sqlite")
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        yield {"spec": {"db": db, "redis": url}, "closer": RedisSessionStore(url)}
        return
    with SqliteStore.from_conn_string(db) as store:
        store.setup()
        yield {"spec": {"db": db}, "closer": LangGraphSessionStore(store)}


def two_processes(stores: dict[str, Any], sandbox: str, options: dict, mode: str) -> list[dict[str, Any]]:
    spec = {
        **stores["spec"],
        "sandbox": sandbox,
        "sandbox_options": options,
        "thread": f"restart-{sandbox}-{mode}",
        "mode": mode,
    }
    first = process({**spec, "question": "Remember 41.", "code": REMEMBER})
    second = process({**spec, "question": "What did I ask you to remember, plus one?", "code": RECALL})
    return [first, second]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_e2b_thread_resumes_its_repl_after_a_restart(mode, stores, e2b_options, envd) -> None:
    first, second = two_processes(stores, "e2b", e2b_options, mode)
    assert first["text"] == "noted" and first["session"]["new_session"] is True
    assert second["text"] == "42"
    assert second["session"] == {
        "thread_id": f"restart-e2b-{mode}",
        "turn": 1,
        "new_session": False,
        "note": f"turn 1 of thread 'restart-e2b-{mode}': the REPL of the earlier turns, resumed",
    }
    assert envd.live_processes() == 1  # the thread's driver waits for the next turn
    closer = ChatRLM(root=ScriptedSub(), sandbox="e2b", session_store=stores["closer"])
    assert closer.close_thread(f"restart-e2b-{mode}")  # e2b_options checks that no driver outlives the test


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_local_thread_starts_a_new_session_after_a_restart_and_says_so(mode, stores) -> None:
    first, second = two_processes(stores, "local", {}, mode)
    assert first["text"] == "noted"
    assert second["text"] == "nothing saved"
    session = second["session"]
    assert session["new_session"] is True and session["turn"] == 0
    assert "could not be resumed" in session["note"]
    assert "a local sandbox cannot move between processes" in session["note"]
