"""How the local sandbox isolates its process: the best level this machine allows, and the command that gets it.

Levels, best first:

- ``bwrap``: bubblewrap. Only the Python runtime (read-only) and a private work dir are visible; private /tmp,
  /proc and /dev; no network; cleared environment; a non-root uid; rlimits.
- ``namespace``: a network namespace, a non-root uid and rlimits; the host's files stay visible to that uid.
- ``none``: a plain subprocess with a cleared environment and rlimits.

Everything is done by exec'ing small standard tools (``prlimit``, ``bwrap``, ``unshare``, ``setpriv``) rather
than a ``preexec_fn``, which is unsafe in a threaded host.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rlm_plugins.repl.base import IsolationLevel

GiB = 1024**3
SANDBOX_UID = 65534
LEVELS: tuple[IsolationLevel, ...] = ("bwrap", "namespace", "none")
DRIVER_PATH = Path(__file__).with_name("driver.py")


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
    """Processes and threads of the sandbox uid (RLIMIT_NPROC); caps fork bombs."""

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


@dataclass(frozen=True)
class Launch:
    """The argv and environment that start a driver at one isolation level."""

    argv: list[str]
    env: dict[str, str]
    level: IsolationLevel
    driver: str
    """The driver's path as the sandboxed process sees it."""


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


def build(level: IsolationLevel, workdir: Path, limits: Limits, extra: list[str]) -> Launch:
    """The command for `level`, running the driver with `extra` arguments, `workdir` as its writable home."""
    prlimit = [shutil.which("prlimit") or "prlimit", *limits.prlimit_args(), "--"]
    if level == "bwrap":
        argv = [*prlimit, *_bwrap_args(workdir), *_drop_privileges()]
        return Launch(argv + _python_argv("/opt/rlm/driver.py", extra), _env("/work"), level, "/opt/rlm/driver.py")
    driver = str(workdir / "driver.py")
    shutil.copyfile(DRIVER_PATH, driver)
    os.chmod(driver, 0o444)
    if level == "namespace":
        argv = [*prlimit, shutil.which("unshare") or "unshare", "--net", "--", *_drop_privileges()]
        return Launch(argv + _python_argv(driver, extra), _env(str(workdir)), level, driver)
    return Launch([*prlimit, *_python_argv(driver, extra)], _env(str(workdir)), level, driver)


def _drop_privileges() -> list[str]:
    if os.geteuid() != 0:
        return []
    return [
        shutil.which("setpriv") or "setpriv",
        f"--reuid={SANDBOX_UID}",
        f"--regid={SANDBOX_UID}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]


def _bwrap_args(workdir: Path) -> list[str]:
    args = [shutil.which("bwrap") or "bwrap"]
    if os.geteuid() == 0:
        args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        args += ["--cap-add", "CAP_SETUID,CAP_SETGID"]
    else:
        args += ["--unshare-all", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    args += ["--die-with-parent", "--clearenv"]
    # The private /tmp, /proc and /dev come first: a later --tmpfs /tmp would hide a Python that lives under /tmp.
    args += ["--perms", "1777", "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    for path in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"):
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for path in ("/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives"):
        args += ["--ro-bind-try", path, path]
    for root in _python_roots():
        parents = []
        parent = Path(root).parent
        while str(parent) not in ("/", "/usr") and not str(parent).startswith("/usr/"):
            parents.append(str(parent))
            parent = parent.parent
        for p in reversed(parents):
            args += ["--perms", "0755", "--dir", p]
        args += ["--ro-bind", root, root]
    args += ["--perms", "0755", "--dir", "/opt/rlm", "--ro-bind", str(DRIVER_PATH), "/opt/rlm/driver.py"]
    args += ["--bind", str(workdir), "/work", "--chdir", "/work", "--"]
    return args


def prepare_workdir(workdir: Path) -> None:
    """Give the sandbox uid its work dir (only needed when we are root and drop to that uid)."""
    if os.geteuid() == 0:
        os.chown(workdir, SANDBOX_UID, SANDBOX_UID)
    os.chmod(workdir, 0o700)


@functools.cache
def available(level: IsolationLevel) -> bool:
    """Whether `level` works on this machine: tried once per process by running Python under it."""
    if level == "none":
        return True
    needed = ["prlimit", "bwrap" if level == "bwrap" else "unshare"]
    if os.geteuid() == 0:
        needed.append("setpriv")
    if any(shutil.which(tool) is None for tool in needed):
        return False
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rlm-probe-") as tmp:
        prepare_workdir(Path(tmp))
        launch = build(level, Path(tmp), Limits(), [])
        argv = [*launch.argv[: -len(_python_argv(launch.driver, []))], sys.executable, "-I", "-c", "print('ok')"]
        try:
            done = subprocess.run(argv, env=launch.env, capture_output=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0 and done.stdout.strip() == b"ok"


def best_level() -> IsolationLevel:
    """The strongest level this machine offers."""
    for level in LEVELS:
        if available(level):
            return level
    return "none"
