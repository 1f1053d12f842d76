"""A uid and gid of its own for each sandbox, from a reserved range, never shared while a sandbox holds it.

Each identity is held by an exclusive `flock` on one file per uid in a root-only directory. Locks on separate open
files exclude each other inside one process as well as across processes, and the kernel drops them when the holder
dies, so a crashed host never leaks an identity.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import random
import stat
import threading
import time
from dataclasses import dataclass, field

from rlm_plugins.errors import SandboxStartError

UID_BASE = 1_900_000_000
"""First uid (and gid) of the reserved range; nothing else on a host should use these ids."""
UID_COUNT = 8192
LOCK_DIRS = ("/run/rlm-plugins/uids", "/dev/shm/rlm-plugins-uids")

_next = itertools.count(random.randrange(UID_COUNT))
_next_lock = threading.Lock()


@dataclass
class Identity:
    """A uid/gid pair held by this process until `release()`."""

    uid: int
    gid: int
    _fd: int = field(repr=False, default=-1)

    def release(self) -> None:
        """Give the ids back; only once every process that ran under them is gone."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def _lock_dir() -> int:
    """An open descriptor of a directory only root can write, created if missing; never through a symlink."""
    for path in LOCK_DIRS:
        parent, name = os.path.split(path)
        try:
            os.makedirs(parent, mode=0o755, exist_ok=True)
            pfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                os.mkdir(name, 0o700, dir_fd=pfd)
            except FileExistsError:
                pass
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        except OSError:
            continue
        finally:
            os.close(pfd)
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022:
            return fd
        os.close(fd)
    raise SandboxStartError("no private directory for the sandbox identity locks (tried " + ", ".join(LOCK_DIRS) + ")")


def allocate() -> Identity:
    """Take a uid of the reserved range that no other sandbox on this machine holds."""
    dfd = _lock_dir()
    try:
        for _ in range(UID_COUNT):
            with _next_lock:
                uid = UID_BASE + next(_next) % UID_COUNT
            fd = os.open(str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return Identity(uid, uid, fd)
    finally:
        os.close(dfd)
    raise SandboxStartError(f"all {UID_COUNT} sandbox identities are in use; close some sandboxes")


def unused(uid: int, within: float = 0.0) -> bool:
    """Whether no process on this machine runs as `uid`, waiting up to `within` seconds for the last ones to go.

    An identity is handed out again only then: a dying process of the old sandbox must never meet the new one.
    """
    deadline = time.monotonic() + within
    while _running_as(uid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _running_as(uid: int) -> bool:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    return True
            except OSError:
                pass
    return False
