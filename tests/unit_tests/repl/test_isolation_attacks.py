"""Model-written code attacking the host, in the isolated levels of the local sandbox (bwrap and namespace).

Each level is asked only for what it promises (see `rlm_plugins.repl.isolation`): bwrap shows the sandbox only the
Python runtime and its work dir; namespace cuts the network, runs as an unprivileged uid of its own and makes the
host's files read-only, but the host's world-readable files stay readable there. Attacks of one sandbox on another
are in `test_isolation_tenants.py`. Levels this machine lacks are skipped with the reason. A few `control`
tests run the same attack unisolated and watch it succeed, so the attacks themselves are known to work.
"""

from __future__ import annotations

import ast
import os
import pathlib
import socket
import sys
import tempfile

import pytest

from rlm_plugins.errors import SandboxClosedError
from rlm_plugins.repl import Limits, LocalSandbox, isolation

PROJECT_FILE = pathlib.Path(__file__).resolve().parents[3] / "pyproject.toml"
SECRET = "sk-rlm-test-secret-0123456789"


@pytest.fixture
def sandbox(isolated_level: str):
    with LocalSandbox(isolation=isolated_level, grace=0.5) as sb:
        yield sb


@pytest.fixture
async def asandbox(isolated_level: str):
    async with LocalSandbox(isolation=isolated_level, grace=0.5) as sb:
        yield sb


def _refused(result, *types: str) -> None:
    assert result.error is not None, f"the attack succeeded: {result.stdout!r}"
    assert result.error.type in types, result.error


READ_SHADOW = "open('/etc/shadow').read()"
SHADOW_DENIED = ("PermissionError", "FileNotFoundError")


@pytest.fixture
def shadow_exists() -> None:
    if not os.path.exists("/etc/shadow"):
        pytest.skip("this host has no /etc/shadow to protect")


def test_execute_cannot_read_etc_shadow(sandbox, shadow_exists) -> None:
    _refused(sandbox.execute(READ_SHADOW), *SHADOW_DENIED)


async def test_aexecute_cannot_read_etc_shadow(asandbox, shadow_exists) -> None:
    _refused(await asandbox.aexecute(READ_SHADOW), *SHADOW_DENIED)


def _private_host_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "private.txt"
    path.write_text("host only")
    path.chmod(0o600)
    return path


def _read_code(path: pathlib.Path) -> str:
    return f"open({str(path)!r}).read()"


def test_execute_cannot_read_project_files(sandbox, isolated_level: str, tmp_path) -> None:
    """bwrap: the project is not even visible. namespace: it promises only that files the host keeps private
    (mode 0600, like a key file) are unreadable; world-readable project files stay readable at that level."""
    assert PROJECT_FILE.exists()
    if isolated_level == "bwrap":
        _refused(sandbox.execute(_read_code(PROJECT_FILE)), "FileNotFoundError")
        listing = sandbox.execute(f"import os\nprint(os.listdir({str(PROJECT_FILE.parent)!r}))")
        # A virtualenv inside the checkout is mounted for the interpreter; nothing else of the project is there.
        assert listing.error is not None or (
            "pyproject.toml" not in listing.stdout and "rlm_plugins" not in listing.stdout
        )
    _refused(sandbox.execute(_read_code(_private_host_file(tmp_path))), "PermissionError", "FileNotFoundError")


async def test_aexecute_cannot_read_project_files(asandbox, isolated_level: str, tmp_path) -> None:
    """The async twin; the same promises per level."""
    if isolated_level == "bwrap":
        _refused(await asandbox.aexecute(_read_code(PROJECT_FILE)), "FileNotFoundError")
    _refused(await asandbox.aexecute(_read_code(_private_host_file(tmp_path))), "PermissionError", "FileNotFoundError")


def test_control_unisolated_code_reads_project_files() -> None:
    with LocalSandbox(isolation="none") as sb:
        assert "[project]" in sb.execute(_read_code(PROJECT_FILE)).stdout


FIND_SECRET = f"""
import glob, os
hits = [k for k, v in os.environ.items() if {SECRET!r} in v]
for path in glob.glob('/proc/*/environ'):
    try:
        with open(path, 'rb') as f:
            if {SECRET!r}.encode() in f.read():
                hits.append(path)
    except OSError:
        pass
(hits, 'PATH' in os.environ or 'PWD' in os.environ)
"""


def test_execute_cannot_see_host_secrets(isolated_level: str, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with LocalSandbox(isolation=isolated_level) as sb:
        assert sb.execute(FIND_SECRET).stdout == "([], True)\n"


async def test_aexecute_cannot_see_host_secrets(isolated_level: str, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    async with LocalSandbox(isolation=isolated_level) as sb:
        assert (await sb.aexecute(FIND_SECRET)).stdout == "([], True)\n"


@pytest.fixture
def listener():
    """A TCP listener on the host's loopback; accept() gives up after 0.2 s."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    yield server
    server.close()


def _connect_code(listener: socket.socket) -> str:
    port = listener.getsockname()[1]
    return f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).close()\n'connected'"


def _nobody_connected(listener: socket.socket) -> None:
    with pytest.raises(TimeoutError):
        listener.accept()[0].close()


NET_DENIED = ("ConnectionRefusedError", "OSError", "TimeoutError")


def test_execute_cannot_reach_host_loopback(sandbox, listener) -> None:
    _refused(sandbox.execute(_connect_code(listener)), *NET_DENIED)
    _nobody_connected(listener)


async def test_aexecute_cannot_reach_host_loopback(asandbox, listener) -> None:
    _refused(await asandbox.aexecute(_connect_code(listener)), *NET_DENIED)
    _nobody_connected(listener)


def test_control_unisolated_code_reaches_host_loopback(listener) -> None:
    with LocalSandbox(isolation="none") as sb:
        assert sb.execute(_connect_code(listener)).stdout == "'connected'\n"
    listener.accept()[0].close()


@pytest.fixture
def host_tmp_file():
    """A file in the host's /tmp, as the host's own programs leave them (owned by us, 0600)."""
    fd, path = tempfile.mkstemp(prefix="rlm-attack-", dir="/tmp")
    os.write(fd, b"original")
    os.close(fd)
    yield pathlib.Path(path)
    os.unlink(path)


def _write_code(path: str) -> str:
    return f"open({path!r}, 'a').write('pwned')"


ESCAPE = f"/tmp/rlm-escape-{os.getpid()}"


def _write_attempts(host_file: pathlib.Path) -> list[str]:
    """Writes that must fail or stay private, then one into the work dir and one into /tmp, the sandbox's own."""
    targets = ("/etc/rlm-attack", "/usr/rlm-attack", str(host_file))
    return [*(_write_code(t) for t in targets), "open('inside.txt', 'w').write('ok')", _write_code(ESCAPE)]


def _check_writes(results: list, level: str, host_file: pathlib.Path) -> None:
    etc, usr, host_tmp, inside, tmp = results
    for result in (etc, usr):
        _refused(result, "PermissionError", "OSError", "FileNotFoundError")
    assert not os.path.exists("/etc/rlm-attack")
    assert not os.path.exists("/usr/rlm-attack")
    assert host_file.read_bytes() == b"original"  # the same path names a new file in the private /tmp: harmless
    assert inside.ok, inside.error
    assert host_tmp.ok and tmp.ok, (host_tmp.error, tmp.error)  # the private /tmp is writable...
    assert not os.path.exists(ESCAPE)  # ...and nothing written there reaches the host's /tmp


def test_execute_cannot_write_outside_the_work_dir(sandbox, isolated_level: str, host_tmp_file) -> None:
    """Both levels give the sandbox a private /tmp; the host's own files and dirs stay unchanged."""
    results = [sandbox.execute(code) for code in _write_attempts(host_tmp_file)]
    _check_writes(results, isolated_level, host_tmp_file)


async def test_aexecute_cannot_write_outside_the_work_dir(asandbox, isolated_level: str, host_tmp_file) -> None:
    """The async twin; the same promises per level."""
    results = [await asandbox.aexecute(code) for code in _write_attempts(host_tmp_file)]
    _check_writes(results, isolated_level, host_tmp_file)


ALLOCATE = "big = bytearray(2 * 1024**3)"
AFTER_ALLOCATE = "small = bytearray(10**7)\nlen(small)"


def test_execute_huge_allocation_is_a_memory_error(sandbox) -> None:
    assert Limits().memory is not None and Limits().memory <= 2 * 1024**3
    _refused(sandbox.execute(ALLOCATE), "MemoryError")
    assert sandbox.execute(AFTER_ALLOCATE).stdout == "10000000\n"


async def test_aexecute_huge_allocation_is_a_memory_error(asandbox) -> None:
    _refused(await asandbox.aexecute(ALLOCATE), "MemoryError")
    assert (await asandbox.aexecute(AFTER_ALLOCATE)).stdout == "10000000\n"


FORK_LOOP = """
import os, time
pids, stopped = [], None
for _ in range(2000):
    try:
        pid = os.fork()
    except BlockingIOError as exc:
        stopped = type(exc).__name__
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    pids.append(pid)
(len(pids), stopped)
"""
# The fork-loop tests use a lower cap than the default, to keep them light on a shared machine; the default reaches
# prlimit (and the sandbox's cgroup, where the host has one) the same way (checked below).
FORK_CAP = Limits(processes=128)


def test_default_limits_cap_processes(isolated_level: str) -> None:
    tenancy = isolation.hold(isolated_level, Limits())
    try:
        launch = isolation.build(isolated_level, Limits(), [], tenancy)
    finally:
        tenancy.release()
    assert Limits().processes == 256
    assert "--nproc=256" in launch.argv
    assert launch.argv.index("--nproc=256") < launch.argv.index(sys.executable)


def _check_fork_loop(stdout: str) -> None:
    forked, stopped = ast.literal_eval(stdout)
    assert stopped == "BlockingIOError"
    assert forked < FORK_CAP.processes < 2000


def _check_all_gone(processes, session: int) -> None:
    """The children sleep 30 s, so they are gone only because closing the sandbox killed them.

    Zombies are waited for too (init reaps them within seconds): until then they still count against the cap.
    """
    assert processes.wait_until_gone(session) == set()
    assert processes.wait_until_gone(session, within=20, zombies=True) == set()


def test_execute_fork_loop_is_capped_and_dies_with_the_sandbox(isolated_level: str, processes) -> None:
    sb = LocalSandbox(isolation=isolated_level, limits=FORK_CAP)
    try:
        sb.start()
        session = sb._proc.pid
        _check_fork_loop(sb.execute(FORK_LOOP, timeout=60).stdout)
    finally:
        sb.close()
    _check_all_gone(processes, session)
    with pytest.raises(SandboxClosedError):
        sb.execute("1")


async def test_aexecute_fork_loop_is_capped_and_dies_with_the_sandbox(isolated_level: str, processes) -> None:
    sb = LocalSandbox(isolation=isolated_level, limits=FORK_CAP)
    try:
        await sb.astart()
        session = sb._proc.pid
        _check_fork_loop((await sb.aexecute(FORK_LOOP, timeout=60)).stdout)
    finally:
        await sb.aclose()
    _check_all_gone(processes, session)
