"""What only the local sandbox does: kill and reap its process tree, and choose an isolation level.

The behaviour every backend promises is in `test_sandbox_contract.py` (`TestLocalSandbox`, at every isolation level
this machine offers; levels that do not work here are skipped with the reason). Each behaviour here that starts a
sandbox is tested through the sync API and, in its twin, through the async one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from rlm_plugins.errors import (
    ConfigurationError,
    IsolationUnavailableError,
    SandboxTerminatedError,
    SandboxTimeoutError,
)
from rlm_plugins.repl import LocalSandbox, isolation

GRACE = 0.2  # seconds the stubborn code below gets after the interrupt before it is killed
STUBBORN = "import time\nwhile True:\n    try:\n        time.sleep(1)\n    except BaseException:\n        pass"


@pytest.fixture
def sandbox(level: str):
    with LocalSandbox(isolation=level, grace=GRACE) as sb:
        yield sb


@pytest.fixture
async def asandbox(level: str):
    async with LocalSandbox(isolation=level, grace=GRACE) as sb:
        yield sb


def test_execute_ignoring_the_interrupt_kills_the_sandbox(sandbox, processes) -> None:
    session = sandbox._proc.pid
    with pytest.raises(SandboxTimeoutError, match="ignored the interrupt"):
        sandbox.execute(STUBBORN, timeout=0.3)
    assert processes.wait_until_gone(session) == set()
    with pytest.raises(SandboxTerminatedError):
        sandbox.execute("1")


async def test_aexecute_ignoring_the_interrupt_kills_the_sandbox(asandbox, processes) -> None:
    session = asandbox._proc.pid
    with pytest.raises(SandboxTimeoutError, match="ignored the interrupt"):
        await asandbox.aexecute(STUBBORN, timeout=0.3)
    assert processes.wait_until_gone(session) == set()
    with pytest.raises(SandboxTerminatedError):
        await asandbox.aexecute("1")


def _leftovers(processes, baseline: set[int], sessions: list[int], workdirs: list[str]) -> dict:
    return {
        "children": processes.children() - baseline,
        "sessions": {sid: left for sid in sessions if (left := processes.wait_until_gone(sid))},
        "workdirs": [d for d in workdirs if d is not None and os.path.exists(d)],
    }


def _cycles(level: str) -> int:
    """100 cycles at the level `auto` picks; 20 at the others, to keep the suite quick (each start is ~50 ms)."""
    return 100 if level == isolation.best_level() else 20


def test_create_close_cycles_leave_nothing_behind(level: str, processes) -> None:
    baseline = processes.children()
    sessions, workdirs = [], []
    for i in range(_cycles(level)):
        with LocalSandbox(isolation=level) as sb:
            sessions.append(sb._proc.pid)
            workdirs.append(sb._tenancy.workdir)
            if i % 10 == 0:
                sb.execute("import subprocess\nsubprocess.Popen(['sleep', '60'])")  # a child it never reaps
    assert _leftovers(processes, baseline, sessions, workdirs) == {"children": set(), "sessions": {}, "workdirs": []}


async def test_acreate_aclose_cycles_leave_nothing_behind(level: str, processes) -> None:
    baseline = processes.children()
    sessions, workdirs = [], []
    for i in range(_cycles(level)):
        async with LocalSandbox(isolation=level) as sb:
            sessions.append(sb._proc.pid)
            workdirs.append(sb._tenancy.workdir)
            if i % 10 == 0:
                await sb.aexecute("import subprocess\nsubprocess.Popen(['sleep', '60'])")
    assert _leftovers(processes, baseline, sessions, workdirs) == {"children": set(), "sessions": {}, "workdirs": []}


def test_require_takes_the_best_level() -> None:
    best = isolation.best_level()
    if best == "none":
        pytest.skip("no isolation level works on this machine, so isolation='require' cannot start here")
    with LocalSandbox(isolation="require") as sb:
        assert sb.isolation == best
        assert sb.execute("1").ok


async def test_arequire_takes_the_best_level() -> None:
    best = isolation.best_level()
    if best == "none":
        pytest.skip("no isolation level works on this machine, so isolation='require' cannot start here")
    async with LocalSandbox(isolation="require") as sb:
        assert sb.isolation == best
        assert (await sb.aexecute("1")).ok


@pytest.fixture
def no_isolation_here(monkeypatch):
    """Pretend this machine has neither bubblewrap nor namespaces."""
    monkeypatch.setattr(isolation, "available", lambda level: level == "none")
    monkeypatch.setattr(isolation, "best_level", lambda: "none")


REQUIRE_MESSAGE = r"isolation='require' but neither bubblewrap nor namespaces work here: install bubblewrap"


def test_require_refuses_to_run_unisolated(no_isolation_here, processes) -> None:
    baseline = processes.children()
    sb = LocalSandbox(isolation="require")
    with pytest.raises(IsolationUnavailableError, match=REQUIRE_MESSAGE):
        sb.start()
    assert (sb._proc, sb._tenancy, processes.children() - baseline) == (None, None, set())


async def test_arequire_refuses_to_run_unisolated(no_isolation_here, processes) -> None:
    baseline = processes.children()
    sb = LocalSandbox(isolation="require")
    with pytest.raises(IsolationUnavailableError, match=REQUIRE_MESSAGE):
        await sb.astart()
    assert (sb._proc, sb._tenancy, processes.children() - baseline) == (None, None, set())


def test_auto_falls_back_to_none_with_a_warning(no_isolation_here) -> None:
    with pytest.warns(RuntimeWarning, match="WITHOUT isolation"), LocalSandbox() as sb:
        assert sb.isolation == "none"
        assert sb.execute("1").ok


async def test_aauto_falls_back_to_none_with_a_warning(no_isolation_here) -> None:
    with pytest.warns(RuntimeWarning, match="WITHOUT isolation"):
        async with LocalSandbox() as sb:
            assert sb.isolation == "none"
            assert (await sb.aexecute("1")).ok


UNAVAILABLE_MESSAGE = r"isolation='bwrap' is not available.*isolation='auto'"


def test_asked_level_that_is_unavailable_is_refused(no_isolation_here) -> None:
    with pytest.raises(IsolationUnavailableError, match=UNAVAILABLE_MESSAGE):
        LocalSandbox(isolation="bwrap").start()


async def test_aasked_level_that_is_unavailable_is_refused(no_isolation_here) -> None:
    with pytest.raises(IsolationUnavailableError, match=UNAVAILABLE_MESSAGE):
        await LocalSandbox(isolation="bwrap").astart()


def test_isolation_none_runs_plain_and_silently() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with LocalSandbox(isolation="none") as sb:
            assert sb.isolation == "none"
            assert sb.execute("import os\nsorted(os.environ)").ok


async def test_aisolation_none_runs_plain_and_silently() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        async with LocalSandbox(isolation="none") as sb:
            assert sb.isolation == "none"
            assert (await sb.aexecute("1")).ok


def test_unknown_isolation_option() -> None:
    with pytest.raises(ConfigurationError, match="isolation='strong' is not one of"):
        LocalSandbox(isolation="strong")  # type: ignore[arg-type]


HOST = """
import os, signal, sys, threading, time
from rlm_plugins.repl import create_sandbox
sb = create_sandbox("local", isolation=sys.argv[1])
sb.start()
sb.execute("import subprocess\\nsubprocess.Popen(['sleep', '60'])")
print(sb._proc.pid, flush=True)
if sys.argv[2] == "killed":
    threading.Thread(target=sb.execute, args=("while True: pass",), kwargs={"timeout": 60}, daemon=True).start()
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("how", ["exits", "killed"])
def test_sandbox_ends_with_its_host(level: str, how: str, processes) -> None:
    """Leaving without close() (atexit closes it) or dying with SIGKILL mid-execution leaves no process behind."""
    done = subprocess.run(
        [sys.executable, "-c", HOST, level, how], capture_output=True, text=True, timeout=60, check=False
    )
    sid = int(done.stdout.split()[0])
    assert processes.wait_until_gone(sid, within=10) == set()
