"""Fixtures shared by the sandbox tests: the isolation levels this machine offers, and process bookkeeping.

Levels that do not work here are skipped with the reason, never silently dropped.
"""

from __future__ import annotations

import os
import time
import types

import pytest

from rlm_plugins.repl import isolation


def _level_param(level: str) -> object:
    missing = {"bwrap": "bubblewrap (bwrap)", "namespace": "root, unshare and Linux 5.12+"}.get(level, "")
    reason = f"isolation level {level!r} does not work on this machine: {missing} missing or not permitted"
    return pytest.param(level, id=level, marks=pytest.mark.skipif(not isolation.available(level), reason=reason))


ALL_LEVELS = [_level_param(level) for level in ("bwrap", "namespace", "none")]
ISOLATED_LEVELS = [_level_param(level) for level in ("bwrap", "namespace")]


@pytest.fixture(params=ALL_LEVELS)
def level(request: pytest.FixtureRequest) -> str:
    """Every isolation level of the local sandbox."""
    return request.param


@pytest.fixture(params=ISOLATED_LEVELS)
def isolated_level(request: pytest.FixtureRequest) -> str:
    """The levels that promise isolation (the attack tests run only there)."""
    return request.param


def _stat(pid: str) -> tuple[str, int, int, int] | None:
    """(state, ppid, process group, session) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[2]), int(fields[3])


def children(parent: int | None = None) -> set[int]:
    """Pids whose parent is `parent` (this process by default), zombies included."""
    parent = os.getpid() if parent is None else parent
    out = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit() and (st := _stat(pid)) is not None and st[1] == parent:
            out.add(int(pid))
    return out


def session_members(sid: int, zombies: bool = False) -> set[int]:
    """Pids in session `sid`: every process a sandbox started lives in the session its launcher opened.

    This also finds children that user code forked and that outlived the driver (their parent is then init).
    Zombies are left out unless asked for: they are dead, and once orphaned only init can reap them (this
    machine's init does so within a few seconds); our own unreaped children are what `children()` counts.
    """
    out = set()
    for pid in os.listdir("/proc"):
        st = _stat(pid) if pid.isdigit() else None
        if st is not None and st[3] == sid and (zombies or st[0] != "Z"):
            out.add(int(pid))
    return out


def wait_until_gone(sid: int, within: float = 5.0, zombies: bool = False) -> set[int]:
    """Poll until session `sid` is empty (a SIGKILLed pid namespace dies asynchronously); return survivors."""
    deadline = time.monotonic() + within
    while (left := session_members(sid, zombies)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


@pytest.fixture
def processes() -> types.SimpleNamespace:
    """Helpers that list the processes a test left: `children()`, `session_members(sid)`, `wait_until_gone(sid)`."""
    return types.SimpleNamespace(children=children, session_members=session_members, wait_until_gone=wait_until_gone)
