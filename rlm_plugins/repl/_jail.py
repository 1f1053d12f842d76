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

import os
import sys

WORK = "/tmp/work"
DRIVER_DIR = "/tmp/.rlm"
DRIVER = DRIVER_DIR + "/driver.py"
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC = 0x2, 0x4, 0x1000, 0x4000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID = 0x1, 0x2
AT_FDCWD, AT_RECURSIVE = -100, 0x8000
SYS_MOUNT_SETATTR = 442
"""The same number on every architecture (syscalls added since 5.1 share one table)."""

# ctypes is imported only where it is used: the cgroup-only step before bwrap then starts in half the time (this
# script runs at every sandbox start).


def _syscall(name: str, *args: object) -> None:
    """Call a libc function; raise OSError when it fails."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}{args[:3]}: {os.strerror(err)}")


def join(procs_files: list[str]) -> None:
    """Move this process into each cgroup; children inherit it."""
    for path in procs_files:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)


def read_only_host() -> None:
    """Make every mount this namespace inherited read-only and nosuid (the host's own mounts are untouched)."""
    import ctypes

    class MountAttr(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint64) for name in ("attr_set", "attr_clr", "propagation", "userns_fd")]

    attr = MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    size = ctypes.c_size_t(ctypes.sizeof(attr))
    root = ctypes.c_char_p(b"/")
    flags = ctypes.c_uint(AT_RECURSIVE)
    _syscall("syscall", ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), root, flags, ctypes.byref(attr), size)


def private_storage(size: int | None, owner: tuple[int, int], driver: str, keep: list[str]) -> None:
    """Mount the tmpfs (capped at `size` bytes when given), and lay out the work dir and the driver in it.

    `keep` lists host directories under /tmp (a Python runtime or virtualenv living there) that the new tmpfs
    would hide: each is bound back, read-only like the rest of the host, from a descriptor opened beforehand.
    """
    from ctypes import c_ulong

    with open(driver, "rb") as src:
        source = src.read()
    held = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)) for path in keep]
    caps = f"size={size},nr_inodes={max(1024, size // 4096)}," if size is not None else ""
    _syscall("mount", b"tmpfs", b"/tmp", b"tmpfs", c_ulong(MS_NOSUID | MS_NODEV), f"{caps}mode=1777".encode())
    for path, fd in held:
        os.makedirs(path, 0o755, exist_ok=True)
        _syscall("mount", f"/proc/self/fd/{fd}".encode(), path.encode(), None, c_ulong(MS_BIND | MS_REC), None)
        os.close(fd)
    for alias in ("/var/tmp", "/dev/shm"):
        if os.path.isdir(alias) and not os.path.islink(alias):
            _syscall("mount", b"/tmp", alias.encode(), None, c_ulong(MS_BIND), None)
    os.mkdir(DRIVER_DIR, 0o755)
    fd = os.open(DRIVER, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444)
    with os.fdopen(fd, "wb") as out:
        out.write(source)
    os.mkdir(WORK, 0o700)
    os.chown(WORK, *owner, follow_symlinks=False)
    os.chdir(WORK)


def run_as_init(argv: list[str]) -> int:
    """Start `argv` and reap every orphan of the namespace until it ends; its exit status is ours.

    Signals from inside the namespace reach this pid 1 only where Python has a handler, that is SIGINT: it is
    ignored (importing `signal` to change the handler would cost more than the rest of this script).
    """
    child = os.fork()
    if child == 0:
        try:
            os.execv(argv[0], argv)
        except OSError as exc:
            os.write(2, f"cannot run {argv[0]}: {exc.strerror}\n".encode())
        os._exit(127)
    os.closerange(0, os.sysconf("SC_OPEN_MAX"))
    while True:
        try:
            pid, status = os.wait()
        except KeyboardInterrupt:
            continue
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code


def parse(args: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Options before `--` (each takes one value, except the `--private` flag), and the command after it.

    Hand-parsed: argparse would add a tenth to the start of every sandbox.
    """
    split = args.index("--")
    opts: dict[str, list[str]] = {}
    head = iter(args[:split])
    for name in head:
        opts.setdefault(name, []).append("" if name == "--private" else next(head))
    return opts, args[split + 1 :]


def main(args: list[str]) -> int:
    opts, argv = parse(args)
    join(opts.get("--join", []))
    if "--private" not in opts:
        os.execv(argv[0], argv)
    read_only_host()
    uid, gid = (int(x) for x in opts["--owner"][0].split(":"))
    storage = int(opts["--storage"][0]) if "--storage" in opts else None
    private_storage(storage, (uid, gid), opts["--driver"][0], opts.get("--keep", []))
    return run_as_init(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
