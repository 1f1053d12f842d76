"""Model-written code attacking the host from the docker sandbox: the attacks of `test_isolation_attacks.py` that apply.

A container promises what bubblewrap does and more: only the image (here: the Python runtime, read-only) and its
own tmpfs work dir are visible, no network, no host processes, no writes outside the work dir, a heap cap that is a
MemoryError, and a pid cap whose forks die with the container. The control tests there show the attacks work.
"""

from __future__ import annotations

import ast
import os
import pathlib

from tests.fixtures_docker import gone
from tests.unit_tests.repl import test_isolation_attacks as attacks

listener = attacks.listener
host_tmp_file = attacks.host_tmp_file
FOREIGN = ("FileNotFoundError", "PermissionError")
READ_ONLY = ("OSError", "PermissionError", "FileNotFoundError")
SIGNAL_HOST = f"import os\nos.kill({os.getpid()}, 0)"


def _attacks(tmp_path: pathlib.Path, host_file: pathlib.Path) -> list[tuple[str, tuple[str, ...]]]:
    """(code, the errors that mean it was refused) for each attack."""
    return [
        (attacks.READ_SHADOW, FOREIGN),
        (attacks._read_code(attacks.PROJECT_FILE), FOREIGN),
        (attacks._read_code(attacks._private_host_file(tmp_path)), FOREIGN),
        (SIGNAL_HOST, ("ProcessLookupError", "PermissionError")),
        *((attacks._write_code(t), READ_ONLY) for t in ("/etc/rlm-attack", "/usr/rlm-attack", str(host_file))),
        (attacks._write_code(attacks.ESCAPE), READ_ONLY),
        (attacks.ALLOCATE, ("MemoryError",)),
    ]


def _check(results: list, expected: list, host_file: pathlib.Path, after: str) -> None:
    for result, (code, refused) in zip(results, expected, strict=True):
        assert result.error is not None, f"the attack succeeded: {code!r} -> {result.stdout!r}"
        assert result.error.type in refused, (code, result.error)
    assert host_file.read_bytes() == b"original"
    assert not any(os.path.exists(p) for p in ("/etc/rlm-attack", "/usr/rlm-attack", attacks.ESCAPE))
    assert after == "10000000\n"  # the MemoryError left the sandbox usable


def test_execute_attacks_are_refused(make_docker, tmp_path, host_tmp_file) -> None:
    expected = _attacks(tmp_path, host_tmp_file)
    with make_docker() as sb:
        results = [sb.execute(code) for code, _ in expected]
        _check(results, expected, host_tmp_file, sb.execute(attacks.AFTER_ALLOCATE).stdout)


async def test_aexecute_attacks_are_refused(make_docker, tmp_path, host_tmp_file) -> None:
    expected = _attacks(tmp_path, host_tmp_file)
    async with make_docker() as sb:
        results = [await sb.aexecute(code) for code, _ in expected]
        _check(results, expected, host_tmp_file, (await sb.aexecute(attacks.AFTER_ALLOCATE)).stdout)


def test_execute_cannot_see_host_secrets(make_docker, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", attacks.SECRET)
    with make_docker() as sb:
        assert sb.execute(attacks.FIND_SECRET).stdout == "([], True)\n"


async def test_aexecute_cannot_see_host_secrets(make_docker, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", attacks.SECRET)
    async with make_docker() as sb:
        assert (await sb.aexecute(attacks.FIND_SECRET)).stdout == "([], True)\n"


def test_execute_cannot_reach_host_loopback(make_docker, listener) -> None:
    with make_docker() as sb:
        attacks._refused(sb.execute(attacks._connect_code(listener)), *attacks.NET_DENIED)
    attacks._nobody_connected(listener)


async def test_aexecute_cannot_reach_host_loopback(make_docker, listener) -> None:
    async with make_docker() as sb:
        attacks._refused(await sb.aexecute(attacks._connect_code(listener)), *attacks.NET_DENIED)
    attacks._nobody_connected(listener)


def _check_fork_loop(stdout: str) -> None:
    forked, stopped = ast.literal_eval(stdout)
    assert stopped == "BlockingIOError"
    assert forked < FORK_PIDS < 2000


FORK_PIDS = 64


def test_execute_fork_loop_is_capped_and_dies_with_the_container(make_docker, docker_engine) -> None:
    sb = make_docker(pids=FORK_PIDS)
    _check_fork_loop(sb.execute(attacks.FORK_LOOP, timeout=60).stdout)
    sb.close()
    assert gone(sb.container_id, docker_engine)  # the forked children sleep 30 s: removal killed them


async def test_aexecute_fork_loop_is_capped_and_dies_with_the_container(make_docker, docker_engine) -> None:
    sb = make_docker(pids=FORK_PIDS)
    _check_fork_loop((await sb.aexecute(attacks.FORK_LOOP, timeout=60)).stdout)
    await sb.aclose()
    assert gone(sb.container_id, docker_engine)
