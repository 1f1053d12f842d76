"""Sandboxes attacking each other, or the host through the host's own hands, at each level this machine offers.

Each test asserts a guarantee, not the mechanism behind it: one sandbox cannot read another's memory or files,
cannot signal it, cannot starve it of processes; nothing a sandbox starts outlives `close()`; what it can write is
bounded; the host, as root, never writes where a sandbox can plant a symlink. A level that does not give a guarantee
must not claim it in `sandbox.guarantees`; the tests check that claim, and at `none` they watch the attack succeed.
What the host itself does for these guarantees (its writes, cgroups, uids) is checked in `test_isolation_host.py`.
"""

from __future__ import annotations

import ast
import os
import secrets
import signal
import time

import pytest

from rlm_plugins.errors import IsolationUnavailableError
from rlm_plugins.repl import Limits, LocalSandbox, isolation

MiB = 1024**2


def _pair(level: str, **options) -> tuple[LocalSandbox, LocalSandbox]:
    return LocalSandbox(isolation=level, grace=0.5, **options), LocalSandbox(isolation=level, grace=0.5, **options)


@pytest.fixture
def tenants(isolated_level: str):
    """Two sandboxes of the same level running at once: `a` is the victim, `b` the attacker."""
    a, b = _pair(isolated_level)
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.close()
        b.close()


def _literal(stdout: str):
    return ast.literal_eval(stdout.strip())


READ_OTHERS_MEMORY = """
import os
hits = []
for pid in [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]:
    try:
        with open(f'/proc/{pid}/maps') as maps, open(f'/proc/{pid}/mem', 'rb', 0) as mem:
            for line in maps:
                span, perms = line.split()[:2]
                start, end = (int(x, 16) for x in span.split('-'))
                if perms.startswith('rw') and end - start < 256 * 2**20:
                    mem.seek(start)
                    if SECRET.encode() in mem.read(end - start):
                        hits.append(pid)
                        break
    except (OSError, ValueError, OverflowError):
        pass
hits
"""


def test_a_sandbox_cannot_read_another_sandboxs_memory(tenants) -> None:
    a, b = tenants
    secret = secrets.token_hex(16)
    assert a.execute(f"kept = 'tenant-a-' + {secret!r}").ok
    found = b.execute(f"SECRET = 'tenant-a-' + {secret!r}\n{READ_OTHERS_MEMORY}", timeout=120)
    assert found.ok, found.error
    assert _literal(found.stdout) == []


async def test_a_sandbox_cannot_read_another_sandboxs_memory_async(tenants) -> None:
    a, b = tenants
    secret = secrets.token_hex(16)
    assert (await a.aexecute(f"kept = 'tenant-a-' + {secret!r}")).ok
    found = await b.aexecute(f"SECRET = 'tenant-a-' + {secret!r}\n{READ_OTHERS_MEMORY}", timeout=120)
    assert _literal(found.stdout) == []


READ_OTHERS_FILE = """
import os
paths = [os.path.join(CWD, 'secret.txt')]
paths += [f'/proc/{p}/cwd/secret.txt' for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]
paths += [f'/proc/{p}/root{CWD}/secret.txt' for p in PIDS]
read = []
for path in paths:
    try:
        with open(path) as f:
            read.append(f.read())
    except OSError:
        pass
read
"""


def test_a_sandbox_cannot_read_another_sandboxs_work_dir(tenants, processes) -> None:
    a, b = tenants
    secret = secrets.token_hex(16)
    wrote = a.execute(f"import os\nopen('secret.txt', 'w').write({secret!r})\nos.getcwd()")
    assert wrote.ok, wrote.error
    pids = sorted(processes.session_members(a._proc.pid))
    found = b.execute(f"CWD = {_literal(wrote.stdout)!r}\nPIDS = {pids!r}\n{READ_OTHERS_FILE}")
    assert found.ok, found.error
    assert secret not in found.stdout


async def test_a_sandbox_cannot_read_another_sandboxs_work_dir_async(tenants, processes) -> None:
    a, b = tenants
    secret = secrets.token_hex(16)
    wrote = await a.aexecute(f"import os\nopen('secret.txt', 'w').write({secret!r})\nos.getcwd()")
    pids = sorted(processes.session_members(a._proc.pid))
    found = await b.aexecute(f"CWD = {_literal(wrote.stdout)!r}\nPIDS = {pids!r}\n{READ_OTHERS_FILE}")
    assert found.ok, found.error
    assert secret not in found.stdout


def _kill_code(victims: list[int]) -> str:
    return f"""
import os, signal
hit = []
for pid in {victims!r}:
    try:
        os.kill(pid, signal.SIGKILL)
        hit.append(pid)
    except OSError:
        pass
hit
"""


def test_a_sandbox_cannot_signal_another(tenants, processes) -> None:
    a, b = tenants
    victims = sorted(processes.session_members(a._proc.pid))
    assert victims
    attack = b.execute(_kill_code(victims))
    assert attack.ok, attack.error
    assert a.execute("6 * 7").stdout == "42\n", "the other sandbox was killed"


async def test_a_sandbox_cannot_signal_another_async(tenants, processes) -> None:
    a, b = tenants
    attack = await b.aexecute(_kill_code(sorted(processes.session_members(a._proc.pid))))
    assert attack.ok, attack.error
    assert (await a.aexecute("6 * 7")).stdout == "42\n", "the other sandbox was killed"


HOLD_PROCESSES = """
import os, time
held = 0
for _ in range(1000):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    held += 1
held
"""


def test_one_sandbox_using_up_its_processes_does_not_stop_another(isolated_level: str) -> None:
    """The hog holds every process it may have; a sandbox with a smaller cap still starts and runs beside it."""
    hog = LocalSandbox(isolation=isolated_level, limits=Limits(processes=96))
    try:
        held = hog.execute(HOLD_PROCESSES, timeout=120)
        assert held.ok, held.error
        assert 40 < _literal(held.stdout) < 96
        with LocalSandbox(isolation=isolated_level, limits=Limits(processes=32)) as other:
            assert other.execute("import subprocess\nsubprocess.run(['true']).returncode").stdout == "0\n"
    finally:
        hog.close()


async def test_one_sandbox_using_up_its_processes_does_not_stop_another_async(isolated_level: str) -> None:
    hog = LocalSandbox(isolation=isolated_level, limits=Limits(processes=96))
    try:
        held = await hog.aexecute(HOLD_PROCESSES, timeout=120)
        assert 40 < _literal(held.stdout) < 96
        async with LocalSandbox(isolation=isolated_level, limits=Limits(processes=32)) as other:
            assert (await other.aexecute("6 * 7")).stdout == "42\n"
    finally:
        await hog.aclose()


def _marker() -> str:
    return f"rlm-orphan-{secrets.token_hex(6)}"


def _escape_code(marker: str) -> str:
    """setsid() and a double fork, then exec `sleep` under a name the host can find in /proc."""
    return f"""
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv('/bin/sleep', [{marker!r}, '300'])
    os._exit(0)
os.wait()
'escaped'
"""


def _with_marker(marker: str) -> set[int]:
    out = set()
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[0] == marker.encode():
                    out.add(int(pid))
        except (OSError, ValueError):
            pass
    return out


def _wait_for(marker: str, present: bool, within: float = 20.0) -> set[int]:
    deadline = time.monotonic() + within
    while bool(found := _with_marker(marker)) != present and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _check_orphan(sb: LocalSandbox, marker: str) -> None:
    """A level that claims `killed_on_close` leaves no orphan; one that does not is shown to leave it."""
    if "killed_on_close" in sb.guarantees:
        assert _wait_for(marker, present=False) == set()
    else:
        survivors = _with_marker(marker)
        assert survivors, "the unisolated level claims nothing, and the orphan outlives it as expected"
        for pid in survivors:
            os.kill(pid, signal.SIGKILL)


def test_nothing_a_sandbox_started_outlives_close(level: str) -> None:
    marker = _marker()
    sb = LocalSandbox(isolation=level)
    try:
        assert sb.execute(_escape_code(marker)).stdout == "'escaped'\n"
        assert _wait_for(marker, present=True)
    finally:
        sb.close()
    _check_orphan(sb, marker)


async def test_nothing_a_sandbox_started_outlives_aclose(level: str) -> None:
    marker = _marker()
    sb = LocalSandbox(isolation=level)
    try:
        assert (await sb.aexecute(_escape_code(marker))).stdout == "'escaped'\n"
        assert _wait_for(marker, present=True)
    finally:
        await sb.aclose()
    _check_orphan(sb, marker)


def test_isolated_levels_claim_the_tenant_guarantees(isolated_level: str) -> None:
    with LocalSandbox(isolation=isolated_level) as sb:
        assert sb.guarantees >= isolation.TENANT_GUARANTEES
    with LocalSandbox(isolation="none") as sb:
        assert sb.guarantees.isdisjoint(isolation.TENANT_GUARANTEES)


@pytest.fixture
def best_lacks_identity(monkeypatch) -> str:
    """Pretend the best level here cannot give each sandbox an identity of its own."""
    if isolation.best_level() == "none":
        pytest.skip("no isolation level works on this machine")
    real = isolation.guarantees
    monkeypatch.setattr(isolation, "guarantees", lambda *args: real(*args) - {"own_identity"})
    return "own_identity"


def test_require_refuses_a_level_missing_a_tenant_guarantee(best_lacks_identity: str, processes) -> None:
    baseline = processes.children()
    sb = LocalSandbox(isolation="require")
    with pytest.raises(IsolationUnavailableError, match=best_lacks_identity):
        sb.start()
    assert (sb._proc, sb._tenancy, processes.children() - baseline) == (None, None, set())
    with LocalSandbox(isolation="auto") as sb:
        assert best_lacks_identity not in sb.guarantees


async def test_require_refuses_a_level_missing_a_tenant_guarantee_async(best_lacks_identity: str) -> None:
    sb = LocalSandbox(isolation="require")
    with pytest.raises(IsolationUnavailableError, match=best_lacks_identity):
        await sb.astart()
    await sb.aclose()


DISK = 32 * MiB
FILL = """
import errno, os
def fill(path, mib):
    written = 0
    try:
        with open(path, 'wb') as f:
            for _ in range(mib):
                f.write(b'x' * 2**20)
                f.flush()
                written += 2**20
    except OSError as exc:
        return written, errno.errorcode.get(exc.errno, str(exc.errno))
    return written, 'ok'
"""


def _fill_targets() -> list[str]:
    return [f"fill('big-in-work-dir', {3 * DISK // MiB})", "fill('/tmp/big', 64)", "fill('/dev/shm/big', 64)"]


def test_storage_is_capped_and_exceeding_it_is_a_cell_error(level: str) -> None:
    """Work dir, /tmp and /dev/shm together hold at most `disk_limit`; beyond it writes fail, the sandbox lives."""
    with LocalSandbox(isolation=level, disk_limit=DISK) as sb:
        if "storage_cap" not in sb.guarantees:
            assert level == "none"
            pytest.skip("the unisolated level does not cap storage (documented)")
        assert sb.execute(FILL).ok
        outcomes = [_literal(sb.execute(target, timeout=120).stdout) for target in _fill_targets()]
        # bwrap leaves /dev/shm read-only (EACCES); the namespace level makes it the same capped tmpfs as /tmp.
        assert [how for _, how in outcomes[:2]] == ["ENOSPC", "ENOSPC"], outcomes
        assert outcomes[2][1] in ("ENOSPC", "EACCES"), outcomes
        assert sum(written for written, _ in outcomes) <= DISK
        assert sb.execute("import os\nos.remove('big-in-work-dir')\nfill('again', 4)").stdout == f"({4 * MiB}, 'ok')\n"


async def test_storage_is_capped_and_exceeding_it_is_a_cell_error_async(level: str) -> None:
    async with LocalSandbox(isolation=level, disk_limit=DISK) as sb:
        if "storage_cap" not in sb.guarantees:
            pytest.skip("the unisolated level does not cap storage (documented)")
        assert (await sb.aexecute(FILL)).ok
        written, how = _literal((await sb.aexecute("fill('/tmp/big', 64)", timeout=120)).stdout)
        assert (how, written <= DISK) == ("ENOSPC", True)
        assert (await sb.aexecute("6 * 7")).stdout == "42\n"
