"""A cgroup per sandbox: a process cap (`pids.max`), a memory cap that also counts tmpfs pages, and a kill that
reaches every process the sandbox started, wherever it moved in the process tree.

Groups are made under this process's own cgroup in each hierarchy that has the `pids` or `memory` controller
(cgroup v1) or that is cgroup v2 (whose `cgroup.kill` ends a whole group at once), so the host's own limits still
bound its sandboxes. A sandbox joins them itself, before it runs anything (see `_jail.py`). Groups are removed on
close, at interpreter exit, and, for hosts that died without either, by the next host that creates one.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import os
import re
import signal
import threading
import time
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"
_STALE = re.compile(r"rlm-(\d+)-\d+")
_ids = itertools.count()
_live: set[Group] = set()
_live_lock = threading.Lock()


@dataclass(frozen=True)
class _Hierarchy:
    path: str
    """This process's own cgroup directory in the hierarchy: sandbox groups are made inside it."""
    v2: bool


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per hierarchy, keyed by controller list ("" for cgroup v2)."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            out[controllers] = path
    return out


@functools.cache
def hierarchies() -> tuple[_Hierarchy, ...]:
    """The hierarchies a root host can make sandbox groups in: v1 `pids` and `memory`, and v2."""
    if os.geteuid() != 0:
        return ()
    try:
        own = _own_paths()
        with open(MOUNTINFO) as f:
            lines = f.read().splitlines()
    except OSError:
        return ()
    found: dict[str, _Hierarchy] = {}
    for line in lines:
        pre, _, post = line.partition(" - ")
        fields, (fstype, _, options) = pre.split(), post.split()[:3]
        root, mount = fields[3], fields[4]
        if fstype == "cgroup2":
            key, v2 = "", True
        elif fstype == "cgroup":
            wanted = {"pids", "memory"} & set(options.split(","))
            key = next((k for k in own if k and wanted and wanted <= set(k.split(","))), "")
            if not key:
                continue
            v2 = False
        else:
            continue
        path = own.get(key)
        if key in found or path is None or not (path + "/").startswith(root.rstrip("/") + "/"):
            continue
        found[key] = _Hierarchy(os.path.join(mount, path[len(root.rstrip("/")) :].lstrip("/")), v2)
    return tuple(found.values())


class Group:
    """One sandbox's cgroups; `procs` are the files a process writes "0" to in order to join them all."""

    def __init__(self, paths: list[str], caps: frozenset[str]) -> None:
        self.paths = tuple(paths)
        self.caps = caps
        """What these groups enforce: "processes", "memory", "kill" (a v2 group ends all its processes at once)."""
        self.procs = tuple(os.path.join(p, "cgroup.procs") for p in self.paths)

    def pids(self) -> set[int]:
        """Processes still in the group."""
        out: set[int] = set()
        for procs in self.procs:
            with contextlib.suppress(OSError), open(procs) as f:
                out.update(int(p) for p in f.read().split())
        return out

    def kill(self) -> None:
        """SIGKILL every process in the group, including ones that left the sandbox's session or process tree."""
        for path in self.paths:
            with contextlib.suppress(OSError):
                _write(os.path.join(path, "cgroup.kill"), "1")
        for pid in self.pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, within: float = 5.0) -> bool:
        """Kill what is left, wait until the group is empty, and remove it; False if a process outlived `within`."""
        deadline = time.monotonic() + within
        while True:
            self.kill()
            left = [p for p in self.paths if os.path.isdir(p)]
            for path in left:
                with contextlib.suppress(OSError):
                    os.rmdir(path)
            if not any(os.path.isdir(p) for p in left):
                with _live_lock:
                    _live.discard(self)
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _limit(path: str, v2: bool, processes: int | None, memory: int | None) -> set[str]:
    """Write the caps the group's controllers offer; return the ones in force."""
    caps = {"kill"} if v2 and os.path.exists(os.path.join(path, "cgroup.kill")) else set()
    wanted = [("processes", "pids.max", processes), ("memory", "memory.max" if v2 else "memory.limit_in_bytes", memory)]
    for cap, name, value in wanted:
        if value is not None and os.path.exists(os.path.join(path, name)):
            _write(os.path.join(path, name), str(value))
            caps.add(cap)
    return caps


def create(processes: int | None, memory: int | None) -> Group | None:
    """Make the groups of one sandbox with its caps, or None when this host cannot (not root, no cgroups)."""
    found = hierarchies()
    if not found:
        return None
    _sweep()
    name = f"rlm-{os.getpid()}-{next(_ids)}"
    paths: list[str] = []
    caps: set[str] = set()
    for h in found:
        path = os.path.join(h.path, name)
        try:
            os.mkdir(path, 0o755)
        except OSError:
            continue
        paths.append(path)
        try:
            caps |= _limit(path, h.v2, processes, memory)
        except OSError:
            continue
    if not paths:
        return None
    group = Group(paths, frozenset(caps))
    with _live_lock:
        _live.add(group)
    return group


def _sweep() -> None:
    """Remove the empty groups of hosts that died without cleaning up (their pid no longer runs)."""
    for h in hierarchies():
        with contextlib.suppress(OSError):
            for entry in os.listdir(h.path):
                match = _STALE.fullmatch(entry)
                if match and not _alive(int(match.group(1))):
                    Group([os.path.join(h.path, entry)], frozenset()).remove(within=0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


@atexit.register
def _remove_all() -> None:
    with _live_lock:
        groups = list(_live)
    for group in groups:
        group.remove(within=2.0)
