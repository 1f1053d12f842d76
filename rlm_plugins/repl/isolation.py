"""How the local sandbox isolates its process: the best level this machine allows, and the command that gets it.

Levels, best first, and what each guarantees (`Launch.guarantees`, shown as `sandbox.guarantees`):

- ``bwrap``: bubblewrap. Only the Python runtime (read-only) and a private work dir are visible; private /tmp,
  /proc and /dev; no network; cleared environment; rlimits. Guarantees every name in `TENANT_GUARANTEES` plus
  ``hidden_host_files`` on a root host, where each sandbox runs as its own uid with a cgroup. Unprivileged, each
  sandbox has a user namespace of its own but its processes count against the host user's limit: no
  ``process_cap``.
- ``namespace`` (root hosts, Linux 5.12+): its own pid, mount, network, IPC and UTS namespaces and its own uid;
  the host's files are visible but read-only (world-readable files stay readable); /tmp, /var/tmp and /dev/shm are
  one private tmpfs of `Limits.disk` bytes that also holds the work dir. Guarantees `TENANT_GUARANTEES`.
- ``none``: a plain subprocess of the host's uid with a cleared environment and rlimits. It guarantees nothing
  against hostile code: it sees and can write what the host can, can signal other sandboxes, and a process it
  detaches (setsid) outlives `close()`. `isolation="require"` refuses it.

Per-sandbox caps: on a root host each isolated sandbox gets a uid of its own (`_identity`) and, where the host can
create cgroups, its own `pids.max` and memory limit (`_cgroup`), so one sandbox cannot starve another.
Everything is done by exec'ing small standard tools (``prlimit``, ``bwrap``, ``unshare``, ``setpriv``) and the
stdlib-only `_jail.py` rather than a ``preexec_fn``, which is unsafe in a threaded host. The host never writes into
a directory a sandbox can write: isolated levels get all their writable storage from a fresh tmpfs.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from rlm_plugins.errors import IsolationUnavailableError
from rlm_plugins.repl import _cgroup, _identity, _jail
from rlm_plugins.repl.base import IsolationLevel

MiB = 1024**2
GiB = 1024**3
NOBODY = 65534
LEVELS: tuple[IsolationLevel, ...] = ("bwrap", "namespace", "none")
DRIVER_PATH = Path(__file__).with_name("driver.py")
JAIL_PATH = Path(__file__).with_name("_jail.py")
BWRAP_DRIVER = "/opt/rlm/driver.py"
CGROUP_SLACK = 256 * MiB
"""Room above the heap and disk caps in a sandbox's memory cgroup, for the interpreter, stacks and page tables."""

TENANT_GUARANTEES = frozenset(
    {"readonly_host", "no_network", "own_identity", "own_pids", "killed_on_close", "process_cap", "storage_cap"}
)
"""What a level must give for `isolation="require"`: the host's files cannot be changed, no network, an identity
of its own (other sandboxes' memory, files and signals are out of reach), its own pid namespace, nothing it started
outlives `close()`, a process cap of its own, and a cap on what it writes (`Limits.disk`; only asked for when set).
Beyond these a level may give ``hidden_host_files`` (bwrap) and ``memory_cap`` (a memory cgroup counts the
sandbox's tmpfs pages with its heap)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of a sandbox process; None lifts a limit.

    The defaults protect the host: raise `memory` for contexts of a gigabyte or more.
    """

    memory: int | None = 2 * GiB
    """Bytes of heap (RLIMIT_DATA); a larger allocation raises MemoryError inside the sandbox."""
    cpu_seconds: int | None = 3600
    file_size: int | None = 1 * GiB
    open_files: int | None = 1024
    processes: int | None = 256
    """Processes and threads of the sandbox: its cgroup's `pids.max`, and RLIMIT_NPROC of its own uid."""
    disk: int | None = 512 * MiB
    """Bytes the sandbox can write in total (work dir, /tmp and the like); beyond it writes fail with ENOSPC.
    Enforced at the isolated levels only; `none` writes where the host can."""

    def prlimit_args(self) -> list[str]:
        pairs = [
            ("--data", self.memory),
            ("--cpu", self.cpu_seconds),
            ("--fsize", self.file_size),
            ("--nofile", self.open_files),
            ("--nproc", self.processes),
            ("--core", 0),
        ]
        return [f"{flag}={value}" for flag, value in pairs if value is not None]

    def cgroup_memory(self) -> int | None:
        """The memory cgroup's limit: heap, plus the tmpfs pages it also counts, plus slack."""
        return None if self.memory is None else self.memory + (self.disk or 0) + CGROUP_SLACK


@dataclass
class Tenancy:
    """What one sandbox holds on the host besides its process: an identity, cgroups, a host work dir (`none`)."""

    identity: _identity.Identity | None = None
    group: _cgroup.Group | None = None
    workdir: str | None = None

    def kill(self) -> None:
        """SIGKILL every process of the sandbox its cgroup knows (also those that left its session)."""
        if self.group is not None:
            self.group.kill()

    def release(self) -> None:
        """Remove the cgroups and the work dir; give the uid back once none of its processes is left."""
        emptied = self.group.remove() if self.group is not None else True
        if self.identity is not None and emptied and _identity.unused(self.identity.uid, within=2.0):
            self.identity.release()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def hold(level: IsolationLevel, limits: Limits) -> Tenancy:
    """Take what a sandbox at `level` needs: its own uid and cgroups (isolated levels, root), or a host work dir."""
    if level == "none":
        return Tenancy(workdir=tempfile.mkdtemp(prefix="rlm-sandbox-"))
    if os.geteuid() != 0:
        return Tenancy()
    identity = _identity.allocate()
    try:
        return Tenancy(identity, _cgroup.create(limits.processes, limits.cgroup_memory()))
    except OSError:
        identity.release()
        raise


@dataclass(frozen=True)
class Launch:
    """The argv and environment that start a driver at one isolation level, and what that level guarantees."""

    argv: list[str]
    env: dict[str, str]
    level: IsolationLevel
    driver: str
    """The driver's path as the sandboxed process sees it."""
    cwd: str = "/"
    guarantees: frozenset[str] = field(default_factory=frozenset)


def _python_roots() -> list[str]:
    """Directories the sandbox needs read-only to run this Python (its prefixes and the real binary's home)."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    real = Path(os.path.realpath(sys.executable))
    roots.add(str(real.parent.parent))
    out = []
    for root in sorted(roots, key=len):
        if root in ("/", "/usr") or any(root == o or root.startswith(o + "/") for o in out):
            continue
        out.append(root)
    return out


def _env(home: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def _python_argv(driver: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-I", "-X", "utf8", "-u", driver, *extra]


def _jail_argv(group: _cgroup.Group | None) -> list[str]:
    joins = [arg for procs in (group.procs if group is not None else ()) for arg in ("--join", procs)]
    return [sys.executable, "-I", "-S", str(JAIL_PATH), *joins]


def guarantees(level: IsolationLevel, limits: Limits, tenancy: Tenancy) -> frozenset[str]:
    """What a sandbox at `level` holding `tenancy` is guaranteed on this host (see `TENANT_GUARANTEES`)."""
    if level == "none":
        return frozenset()
    out = {"readonly_host", "no_network", "own_pids", "killed_on_close"}
    if level == "bwrap":
        out.add("hidden_host_files")
    if limits.disk is not None:
        out.add("storage_cap")
    if tenancy.identity is not None or os.geteuid() != 0:
        out.add("own_identity")  # a uid of its own, or (unprivileged bwrap) a user namespace of its own
    caps = tenancy.group.caps if tenancy.group is not None else frozenset()
    if limits.processes is not None and ("processes" in caps or tenancy.identity is not None):
        out.add("process_cap")
    if "memory" in caps:
        out.add("memory_cap")
    return frozenset(out)


def build(level: IsolationLevel, limits: Limits, extra: list[str], tenancy: Tenancy | None = None) -> Launch:
    """The command for `level`, running the driver with `extra` arguments inside what `tenancy` holds."""
    tenancy = tenancy or Tenancy()
    prlimit = [shutil.which("prlimit") or "prlimit", *limits.prlimit_args(), "--"]
    promised = guarantees(level, limits, tenancy)
    drop = _drop_privileges(tenancy.identity)
    if level == "bwrap":
        pre = [*_jail_argv(tenancy.group), "--"] if tenancy.group is not None else []
        argv = [*prlimit, *pre, *_bwrap_args(limits.disk), *drop, *_python_argv(BWRAP_DRIVER, extra)]
        return Launch(argv, _env(_jail.WORK), level, BWRAP_DRIVER, "/", promised)
    if level == "namespace":
        if tenancy.identity is None:
            raise OSError("the namespace level needs a root host and a sandbox identity")
        identity = tenancy.identity
        unshare = [shutil.which("unshare") or "unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
        unshare += ["--net", "--ipc", "--uts", "--"]
        jail = [*_jail_argv(tenancy.group), "--private", "--owner", f"{identity.uid}:{identity.gid}"]
        jail += ["--driver", str(DRIVER_PATH), *([] if limits.disk is None else ["--storage", str(limits.disk)])]
        for root in _python_roots():
            if root == "/tmp" or root.startswith("/tmp/"):  # hidden by the private /tmp: bound back read-only
                jail += ["--keep", root]
        argv = [*prlimit, *unshare, *jail, "--", *drop, *_python_argv(_jail.DRIVER, extra)]
        return Launch(argv, _env(_jail.WORK), level, _jail.DRIVER, "/", promised)
    workdir = tenancy.workdir or "/"
    argv = [*prlimit, *_python_argv(str(DRIVER_PATH), extra)]
    return Launch(argv, _env(workdir), level, str(DRIVER_PATH), workdir, promised)


def check_required(launch: Launch, limits: Limits) -> None:
    """Refuse a launch that lacks a tenant guarantee (`storage_cap` only when `limits` cap the disk)."""
    wanted = TENANT_GUARANTEES - ({"storage_cap"} if limits.disk is None else set())
    missing = sorted(wanted - launch.guarantees)
    if missing:
        msg = (
            f"isolation='require' but the best level here ({launch.level!r}) does not guarantee {missing}: "
            "run as root with bubblewrap installed, or pass isolation='auto' to accept it"
        )
        raise IsolationUnavailableError(msg)


def _drop_privileges(identity: _identity.Identity | None) -> list[str]:
    if os.geteuid() != 0:
        return []
    uid, gid = (identity.uid, identity.gid) if identity is not None else (NOBODY, NOBODY)
    return [
        shutil.which("setpriv") or "setpriv",
        f"--reuid={uid}",
        f"--regid={gid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def _bwrap_args(disk: int | None) -> list[str]:
    """bwrap's options: one tmpfs of `disk` bytes on /tmp holds the work dir, /tmp/work (the host has no copy)."""
    root = os.geteuid() == 0
    args = [shutil.which("bwrap") or "bwrap"]
    if root:
        args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        args += ["--cap-add", "CAP_SETUID,CAP_SETGID"]
    else:
        args += ["--unshare-all", "--uid", str(NOBODY), "--gid", str(NOBODY)]
    # No --die-with-parent: its PR_SET_PDEATHSIG fires when the *thread* that started bwrap exits, which would kill
    # a session's sandbox between turns run on different threads. A vanished host is caught by the driver instead
    # (EOF on its channel), and the pid namespace ends every process with it.
    args += ["--clearenv"]
    # The private /tmp, /proc and /dev come first: a later --tmpfs /tmp would hide a Python that lives under /tmp.
    args += [] if disk is None else ["--size", str(disk)]
    args += ["--perms", "1777", "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    # Only this sandbox's processes see its mount namespace, so an open mode is safe when its uid cannot own the dir.
    args += ["--perms", "0777" if root else "0700", "--dir", _jail.WORK]
    for path in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives"):
        args += ["--ro-bind-try", path, path]
    for python_root in _python_roots():
        parents = []
        parent = Path(python_root).parent
        while str(parent) not in ("/", "/usr") and not str(parent).startswith("/usr/"):
            parents.append(str(parent))
            parent = parent.parent
        for p in reversed(parents):
            args += ["--perms", "0755", "--dir", p]
        args += ["--ro-bind", python_root, python_root]
    args += ["--perms", "0755", "--dir", str(Path(BWRAP_DRIVER).parent), "--ro-bind", str(DRIVER_PATH), BWRAP_DRIVER]
    args += ["--chdir", _jail.WORK, "--"]
    return args


@functools.cache
def available(level: IsolationLevel) -> bool:
    """Whether `level` works on this machine: tried once per process by running Python under it."""
    if level == "none":
        return True
    if level == "namespace" and os.geteuid() != 0:
        return False
    needed = ["prlimit", "bwrap" if level == "bwrap" else "unshare"]
    if os.geteuid() == 0:
        needed.append("setpriv")
    if any(shutil.which(tool) is None for tool in needed):
        return False
    tenancy = Tenancy(_identity.allocate()) if os.geteuid() == 0 else Tenancy()
    try:
        launch = build(level, replace(Limits(), disk=16 * MiB), [], tenancy)
        argv = [*launch.argv[: -len(_python_argv(launch.driver, []))], sys.executable, "-I", "-c", "print('ok')"]
        try:
            done = subprocess.run(argv, env=launch.env, cwd=launch.cwd, capture_output=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0 and done.stdout.strip() == b"ok"
    finally:
        tenancy.release()


def best_level() -> IsolationLevel:
    """The strongest level this machine offers."""
    for level in LEVELS:
        if available(level):
            return level
    return "none"
