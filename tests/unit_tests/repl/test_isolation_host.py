"""What the host does to keep sandboxes apart: it never writes where a sandbox can, it cleans up every cgroup, it
never hands one uid to two sandboxes, and a sandbox's tmpfs is charged to its memory cgroup.

Tests that need a root host (per-sandbox uids, host-side ownership) skip elsewhere with the reason.
"""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

from rlm_plugins.repl import LocalSandbox

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="per-sandbox identities and host-side ownership need a root host")
MiB = 1024**2


class _HostWrites:
    """Records every file the host process writes, chmods or chowns by path while it is switched on."""

    def __init__(self) -> None:
        self.on = False
        self.unsafe: list[tuple[str, str]] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if not self.on:
            return
        if event == "open" and isinstance(args[0], str):
            mode, flags = args[1], args[2] or 0
            writes = any(c in (mode or "") for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            if writes:
                self._check(event, args[0])
        elif event in ("os.chmod", "os.chown", "os.rename", "os.symlink", "os.truncate") and isinstance(args[0], str):
            self._check(event, args[0])
        elif event == "shutil.copyfile":
            self._check(event, str(args[1]))

    def _check(self, event: str, path: str) -> None:
        """Unsafe: a path whose directory a sandbox uid owns (relative names resolve against a dir fd: skipped)."""
        if not os.path.isabs(path):
            return
        try:
            owner = os.lstat(os.path.dirname(path)).st_uid
        except OSError:
            return
        if owner != os.geteuid():
            self.unsafe.append((event, path))


_WRITES = _HostWrites()


@needs_root
def test_root_never_writes_into_a_directory_a_sandbox_owns(level: str) -> None:
    sb = LocalSandbox(isolation=level)
    _WRITES.unsafe.clear()
    _WRITES.on = True
    try:
        sb.start()
        sb.load("context", "x" * 200_000)
        assert sb.execute("len(context)").stdout == "200000\n"
    finally:
        sb.close()
        _WRITES.on = False
    assert _WRITES.unsafe == []


@pytest.fixture
def planted_symlink(monkeypatch, tmp_path):
    """A sandbox that won the race: every fresh temporary dir already holds its symlinks to a host file."""
    target = tmp_path / "host-owned.txt"
    target.write_text("original")
    target.chmod(0o600)
    real = tempfile.mkdtemp

    def mkdtemp(*args, **kwargs):
        path = real(*args, **kwargs)
        for name in ("driver.py", "work", "tmp", "secret.txt"):
            os.symlink(target, os.path.join(path, name))
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    return target


@needs_root
def test_a_planted_symlink_never_redirects_a_host_write(level: str, planted_symlink: pathlib.Path) -> None:
    with LocalSandbox(isolation=level) as sb:
        assert sb.execute("6 * 7").stdout == "42\n"
    assert planted_symlink.read_text() == "original"
    assert planted_symlink.stat().st_mode & 0o777 == 0o600


CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")


def _cgroups_named(fragment: str) -> list[str]:
    if not CGROUP_ROOT.is_dir():
        return []
    found = []
    for dirpath, dirnames, _ in os.walk(CGROUP_ROOT):
        found += [os.path.join(dirpath, d) for d in dirnames if fragment in d]
        dirnames[:] = [d for d in dirnames if not d.startswith(("system.slice", "docker"))]
    return found


def _host(level: str, ending: str) -> int:
    """Run a host that starts a sandbox and then ends with `ending`; return its pid."""
    code = (
        "import os, signal\nfrom rlm_plugins.repl import LocalSandbox\n"
        f"sb = LocalSandbox(isolation={level!r})\nsb.execute('1')\nprint(os.getpid(), flush=True)\n{ending}"
    )
    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[3])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.stdout.strip().isdigit(), done.stderr
    return int(done.stdout)


def test_close_and_exit_leave_no_cgroup(isolated_level: str) -> None:
    """A closed sandbox's cgroups are gone; so are those of a host that exits without closing its sandbox, and
    those of a host killed outright are removed by the next host that starts a sandbox."""
    with LocalSandbox(isolation=isolated_level) as sb:
        assert sb.execute("1").ok
        group = sb._tenancy.group
        held = list(group.paths) if group is not None else []
    assert [p for p in held if os.path.exists(p)] == []
    assert _cgroups_named(f"rlm-{_host(isolated_level, '')}-") == []
    killed = _host(isolated_level, "os.kill(os.getpid(), signal.SIGKILL)")
    with LocalSandbox(isolation=isolated_level) as sb:
        assert sb.execute("1").ok
    assert _cgroups_named(f"rlm-{killed}-") == []


@needs_root
def test_identities_are_never_shared_within_or_across_processes() -> None:
    """Held uids are unique in this process, and another process never gets one of them while they are held."""
    from rlm_plugins.repl import _identity

    held = [_identity.allocate() for _ in range(64)]
    try:
        ours = {identity.uid for identity in held}
        assert len(ours) == 64
        assert all(_identity.UID_BASE <= uid < _identity.UID_BASE + _identity.UID_COUNT for uid in ours)
        code = "from rlm_plugins.repl import _identity\nprint([_identity.allocate().uid for _ in range(256)])"
        env = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[3])}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
        theirs = set(ast.literal_eval(done.stdout))
        assert len(theirs) == 256 and not theirs & ours
    finally:
        for identity in held:
            identity.release()


@needs_root
def test_sandboxes_running_at_once_have_distinct_uids(isolated_level: str) -> None:
    sandboxes = [LocalSandbox(isolation=isolated_level) for _ in range(4)]
    try:
        uids = [sb.execute("import os\nos.getuid(), os.getgid()").stdout for sb in sandboxes]
    finally:
        for sb in sandboxes:
            sb.close()
    assert len(set(uids)) == 4
    assert all(ast.literal_eval(u)[0] >= 1000 for u in uids)


def test_tmpfs_pages_count_against_the_memory_cap(isolated_level: str) -> None:
    """Where a level claims `memory_cap`, what the sandbox parks in its tmpfs is charged to its memory cgroup."""
    with LocalSandbox(isolation=isolated_level) as sb:
        if "memory_cap" not in sb.guarantees:
            pytest.skip("this host gives the sandbox no memory cgroup (not root, or no memory controller)")
        files = [
            pathlib.Path(p, name)
            for p in sb._tenancy.group.paths
            for name in ("memory.usage_in_bytes", "memory.current")
        ]
        memory = [f for f in files if f.exists()]  # cgroup v1, v2

        def used() -> int:
            return sum(int(f.read_text()) for f in memory)

        before = used()
        assert sb.execute("open('/tmp/parked', 'wb').write(b'x' * 64 * 2**20)").ok
        assert used() - before >= 60 * MiB


def test_a_python_living_under_tmp_still_runs_at_the_namespace_level(tmp_path_factory):
    """CI checkouts (and their virtualenvs) may live under /tmp, which the sandbox's private tmpfs covers."""
    from pathlib import Path

    from rlm_plugins.repl import isolation

    if not isolation.available("namespace"):
        pytest.skip("the namespace level does not work on this machine")
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        code = (
            "from rlm_plugins.repl import create_sandbox\n"
            "with create_sandbox('local', isolation='namespace') as sb:\n"
            "    print(sb.execute('print(6 * 7)').stdout, end='')\n"
        )
        root = Path(__file__).resolve().parents[3]
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
        )
    assert done.stdout == "42\n", done.stderr[-2000:]
