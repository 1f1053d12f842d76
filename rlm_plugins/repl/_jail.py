"""The first step of a sandbox's own process, run as root by path with `python -I -S`: stdlib only, no package.

It joins the sandbox's cgroups before anything is forked (so every later process is counted and killable), and at
the `namespace` level, where it runs as pid 1 of a fresh pid and mount namespace, it builds the sandbox's view:
the host's file systems read-only, one size-capped tmpfs on /tmp (also seen at /var/tmp and /dev/shm) holding the
work dir and a root-owned copy of the driver, then it starts the given command and reaps orphans until that
command ends. Everything it writes is in that fresh tmpfs, which no other process can reach yet.

Usage: python -I -S _jail.py [--join PROCS_FILE]... [--private --owner UID:GID --driver PATH [--storage BYTES]] -- ARGV
(with --private, ARGV runs the driver from `DRIVER`).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys

WORK = "/tmp/work"
DRIVER_DIR = "/tmp/.rlm"
DRIVER = DRIVER_DIR + "/driver.py"
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC = 0x2, 0x4, 0x1000, 0x4000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID = 0x1, 0x2
AT_FDCWD, AT_RECURSIVE = -100, 0x8000
SYS_MOUNT_SETATTR = 442
"""The same number on every architecture (syscalls added since 5.1 share one table)."""


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def join(procs_files: list[str]) -> None:
    """Move this process into each cgroup; children inherit it."""
    for path in procs_files:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)


def read_only_host(libc: ctypes.CDLL) -> None:
    """Make every mount this namespace inherited read-only and nosuid (the host's own mounts are untouched)."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    libc.syscall.restype = ctypes.c_long
    done = libc.syscall(
        ctypes.c_long(SYS_MOUNT_SETATTR),
        ctypes.c_int(AT_FDCWD),
        ctypes.c_char_p(b"/"),
        ctypes.c_uint(AT_RECURSIVE),
        ctypes.byref(attr),
        ctypes.c_size_t(ctypes.sizeof(attr)),
    )
    _check(done, "mount_setattr(/, read-only)")


def private_storage(libc: ctypes.CDLL, size: int | None, owner: tuple[int, int], driver: str) -> None:
    """Mount the tmpfs (capped at `size` bytes when given), and lay out the work dir and the driver in it."""
    caps = f"size={size},nr_inodes={max(1024, size // 4096)}," if size is not None else ""
    data = f"{caps}mode=1777".encode()
    _check(libc.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, data), "mount tmpfs on /tmp")
    for alias in ("/var/tmp", "/dev/shm"):
        if os.path.isdir(alias) and not os.path.islink(alias):
            _check(libc.mount(b"/tmp", alias.encode(), None, MS_BIND, None), f"bind /tmp on {alias}")
    os.mkdir(DRIVER_DIR, 0o755)
    with open(driver, "rb") as src:
        source = src.read()
    fd = os.open(DRIVER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444)
    with os.fdopen(fd, "wb") as out:
        out.write(source)
    os.mkdir(WORK, 0o700)
    os.chown(WORK, *owner, follow_symlinks=False)
    os.chdir(WORK)


def run_as_init(argv: list[str]) -> int:
    """Start `argv` and reap every orphan of the namespace until it ends; its exit status is ours."""
    child = os.fork()
    if child == 0:
        os.execv(argv[0], argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.closerange(0, os.sysconf("SC_OPEN_MAX"))
    while True:
        pid, status = os.wait()
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="_jail.py")
    parser.add_argument("--join", action="append", default=[])
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--storage", type=int)
    parser.add_argument("--owner")
    parser.add_argument("--driver")
    parser.add_argument("argv", nargs="+")
    opts = parser.parse_args(args)
    join(opts.join)
    if not opts.private:
        os.execv(opts.argv[0], opts.argv)
    libc = _libc()
    read_only_host(libc)
    uid, gid = (int(x) for x in opts.owner.split(":"))
    private_storage(libc, opts.storage, (uid, gid), opts.driver)
    return run_as_init(opts.argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
