"""Soak: 200 runs on the local sandbox from 16 threads and 16 asyncio tasks at once, then count what leaked.

The runs mix good code, crashes (os._exit, a segfault), timeouts (one that ignores the interrupt), hostile code
(a bounded fork bomb, a setsid + double-fork escapee, huge output, a file parked in /tmp), failing sub-models,
a failing root model, and rlm_query trees whose children outlive the code that called them. Root models are
scripted; the code runs for real in the local sandbox.

Afterwards (and after a short settle) it prints, before and after: processes started under this benchmark that
are still alive (the benchmark is a child subreaper, so escaped grandchildren are reparented to it and counted),
open fds, threads, files in /dev/shm and /tmp, and cgroups named rlm* under /sys/fs/cgroup (those whose name
carries this process's pid, and all of them: other work on the machine makes its own). When it runs as root
with `unshare` available it re-executes itself in a private mount namespace with fresh tmpfs on /dev/shm and /tmp,
so every file counted there is this benchmark's (other work on the machine cannot blur the counts). Leaked
processes are killed at the end, by pid.

    python bench/bench_soak.py            # 200 runs, 16 threads + 16 tasks
    python bench/bench_soak.py --runs 40  # a shorter soak
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import glob
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NONCE = f"{os.getpid() % 1000}{uuid.uuid4().int % 10_000:04d}"
"""Decimal digits put into the hostile code's `sleep` arguments, so its processes can be found by command line."""

PR_SET_CHILD_SUBREAPER = 36


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"


def turn_of(messages: list[dict[str, str]]) -> int:
    return sum(1 for m in messages if m["role"] == "assistant")


@dataclass
class Kind:
    """One kind of run: the root's replies by turn (the last repeats), and what the engine is built with."""

    name: str
    replies: list[str]
    sub: Callable[[str], str] | None = None
    depth: int = 1
    exec_timeout: float = 5.0
    max_time: float | None = None
    fail_root_at: int | None = None


def _good_sub(prompt: str) -> str:
    return f"ok:{len(prompt)}"


def _flaky_sub(prompt: str) -> str:
    from rlm_plugins.errors import SubModelError

    time.sleep(0.01)
    if hash(prompt) % 2:
        raise SubModelError("scripted provider failure: rate limited")
    return "fine"


GOOD = "n = len(context)\nparts = llm_query_batched([context[i:i + 40] for i in range(0, 320, 40)])\nprint(n, parts[0])"
FORK_BOMB = f"""import os
kids = 0
for _ in range(20):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.execv('/bin/sleep', ['sleep', '20.{NONCE}'])
    kids += 1
print('forked', kids)"""
ESCAPEE = f"""import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv('/bin/sleep', ['sleep', '300.{NONCE}'])
    os._exit(0)
print('escaped')"""
STUBBORN = """while True:
    try:
        while True:
            pass
    except BaseException:
        pass"""
CHILD_CODE = "import time\ntime.sleep(4)\nprint('child still here')"

KINDS = [
    Kind("good", [fence(GOOD), fence("FINAL('done')")], sub=_good_sub),
    Kind("os._exit", [fence("x = 1"), fence("import os\nos._exit(7)")]),
    Kind("segfault", [fence("import ctypes\nctypes.string_at(0)")]),
    Kind("timeout", [fence("while True:\n    pass"), fence("FINAL('after the timeout')")], exec_timeout=1.0),
    Kind("ignores interrupt", [fence(STUBBORN)], exec_timeout=1.0),
    Kind("fork bomb", [fence(FORK_BOMB), fence("FINAL('forked')")]),
    Kind("escapee", [fence(ESCAPEE), fence("FINAL('escaped')")]),
    Kind("huge output", [fence("import sys\nprint('x' * 20_000_000)\nsys.stderr.write('y' * 20_000_000)")]),
    Kind("file in /tmp", [fence(f"open('/tmp/soak-{NONCE}-' + str(id(context)), 'wb').write(b'z' * 5_000_000)")]),
    Kind("failing sub-model", [fence("print(llm_query_batched([str(i) for i in range(8)]))")], sub=_flaky_sub),
    Kind("failing root", [fence("print('one step')")], fail_root_at=1),
    Kind("orphaned child", [fence("print(rlm_query('CHILD task'))"), fence("FINAL('root done')")], None, 2, 1.5),
    Kind("max_time", [fence("import time\ntime.sleep(0.5)")], max_time=1.2),
]


def root_model(kind: Kind) -> Callable[[list[dict[str, str]]], str]:
    from rlm_plugins.errors import ModelError

    def complete(messages: list[dict[str, str]]) -> str:
        if "no more code will run" in messages[-1]["content"]:
            return "extracted"
        if kind.depth > 1 and "CHILD" in str(messages) and "rlm_query('CHILD" not in str(messages):
            return fence(CHILD_CODE)
        turn = turn_of(messages)
        if kind.fail_root_at is not None and turn >= kind.fail_root_at:
            raise ModelError("scripted root failure: the provider is down")
        return kind.replies[min(turn, len(kind.replies) - 1)]

    return complete


def engine_for(kind: Kind) -> Any:
    from rlm_plugins.core.budget import Limits
    from rlm_plugins.core.callables import CallableSubModel
    from rlm_plugins.core.chat_policy import ChatPolicy
    from rlm_plugins.core.engine import Engine
    from rlm_plugins.repl.factory import sandbox_factory

    return Engine(
        ChatPolicy(root_model(kind), model="scripted"),
        CallableSubModel(kind.sub or _good_sub, name="scripted-sub"),
        sandbox_factory("local"),
        limits=Limits(max_iterations=4, max_llm_calls=200, max_depth=kind.depth, max_time=kind.max_time),
        exec_timeout=kind.exec_timeout,
    )


@dataclass
class Tally:
    outcomes: Counter = field(default_factory=Counter)
    surprises: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: Kind, outcome: str, surprise: str | None = None) -> None:
        with self.lock:
            self.outcomes[(kind.name, outcome)] += 1
            if surprise:
                self.surprises.append(f"{kind.name}: {surprise}")


def _outcome(kind: Kind, result: Any = None, error: BaseException | None = None) -> tuple[str, str | None]:
    from rlm_plugins.errors import ModelError

    if error is None:
        return result.finish_reason, None
    if isinstance(error, ModelError) and kind.fail_root_at is not None and error.partial is not None:
        return "ModelError with partial", None
    text = " ".join(str(error).split())
    return f"raised {type(error).__name__}", f"{type(error).__name__}: {text[:100]} ... {text[-160:]}"


def _next(work: queue.Queue) -> Kind | None:
    try:
        return work.get_nowait()
    except queue.Empty:
        return None


def sync_worker(work: queue.Queue, engines: dict[str, Any], tally: Tally) -> None:
    while (kind := _next(work)) is not None:
        try:
            result, error = engines[kind.name].run("q", f"context for {kind.name}"), None
        except Exception as exc:
            result, error = None, exc
        tally.add(kind, *_outcome(kind, result, error))


async def async_worker(work: queue.Queue, engines: dict[str, Any], tally: Tally) -> None:
    while (kind := _next(work)) is not None:
        try:
            result, error = await engines[kind.name].arun("q", f"context for {kind.name}"), None
        except Exception as exc:
            result, error = None, exc
        tally.add(kind, *_outcome(kind, result, error))


async def async_side(work: queue.Queue, engines: dict[str, Any], tally: Tally, tasks: int) -> None:
    await asyncio.gather(*(async_worker(work, engines, tally) for _ in range(tasks)))


def _proc_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, state letter, command line) for every process this namespace shows."""
    table = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as fh:
                status = dict(line.rstrip("\n").split(":\t", 1) for line in fh if ":\t" in line)
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        table[int(pid)] = (int(status.get("PPid", "0")), status.get("State", "?")[:1], cmdline)
    return table


def descendants() -> dict[int, tuple[str, str]]:
    """Live (non-zombie) descendants of this process: pid -> (state, command line)."""
    table = _proc_table()
    found: dict[int, tuple[str, str]] = {}
    stack = [os.getpid()]
    while stack:
        parent = stack.pop()
        for pid, (ppid, state, cmdline) in table.items():
            if ppid == parent and pid not in found:
                stack.append(pid)
                if state != "Z":
                    found[pid] = (state, cmdline)
    return found


def tagged() -> dict[int, str]:
    """Processes anywhere whose command line carries this run's nonce (hostile code's sleeps)."""
    return {pid: cmd for pid, (_, state, cmd) in _proc_table().items() if NONCE in cmd and state != "Z"}


def snapshot() -> dict[str, int | set[str]]:
    """What the host holds now: countable resources as sets of names (or a bare count)."""
    with open("/proc/self/status") as fh:
        os_threads = next(int(line.split()[1]) for line in fh if line.startswith("Threads:"))
    cgroups = {*glob.glob("/sys/fs/cgroup/rlm*"), *glob.glob("/sys/fs/cgroup/*/rlm*")}
    ours = {path for path in cgroups if str(os.getpid()) in os.path.basename(path)}
    return {
        "processes (descendants)": {f"{pid}:{cmd[:60]}" for pid, (_, cmd) in descendants().items()},
        "processes (hostile, by tag)": {f"{pid}:{cmd[:60]}" for pid, cmd in tagged().items()},
        "fds": set(os.listdir("/proc/self/fd")),
        "threads (Python)": {f"{t.name}#{t.ident}" for t in threading.enumerate()},
        "threads (OS)": os_threads,
        "files in /dev/shm": set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set(),
        "files in /tmp": set(os.listdir("/tmp")),
        "cgroups rlm* (this process)": ours,
        "cgroups rlm* (whole machine)": cgroups,
    }


def report(before: dict[str, int | set[str]], after: dict[str, int | set[str]]) -> int:
    """Print before/after counts and what is new; returns the number of leaked resources."""
    print(f"\n{'resource':28} {'before':>7} {'after':>7} {'leaked':>7}  what")
    leaks = 0
    for key, old in before.items():
        new = after[key]
        if isinstance(old, int) or isinstance(new, int):
            count_old, count_new, what = int(old), int(new), ""
        else:
            added = sorted(new - old)
            count_old, count_new = len(old), len(new)
            if key == "threads (Python)":
                added = [
                    f"{n} x {name}"
                    for name, n in Counter(a.split("#")[0].rstrip("0123456789_-") for a in added).items()
                ]
            what = ", ".join(added[:6]) + (" ..." if len(added) > 6 else "")
        leaked = max(0, count_new - count_old)
        leaks += leaked
        print(f"{key:28} {count_old:>7} {count_new:>7} {leaked:>7}  {what}")
    return leaks


def _fd_kinds(fds: set[str]) -> Counter:
    kinds: Counter = Counter()
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            kinds[target.split(":")[0] if ":" in target else "file"] += 1
    return kinds


def private_namespace() -> None:
    """Re-run this script in a private mount namespace with fresh tmpfs on /dev/shm and /tmp (root only)."""
    if os.environ.get("RLM_SOAK_PRIVATE") or os.geteuid() != 0 or shutil.which("unshare") is None:
        return
    script = 'mount -t tmpfs -o mode=1777 tmpfs /dev/shm && mount -t tmpfs -o mode=1777 tmpfs /tmp && exec "$@"'
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", sys.executable, *sys.argv]
    env = {**os.environ, "RLM_SOAK_PRIVATE": "1"}
    sys.exit(subprocess.call(argv, env=env))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument(
        "--settle",
        type=float,
        default=35.0,
        help="seconds to wait before counting (idle daemon pool threads end after 30 s)",
    )
    args = parser.parse_args()
    private_namespace()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    from rlm_plugins.repl.isolation import best_level

    level = best_level()
    engines = {kind.name: engine_for(kind) for kind in KINDS}
    work: queue.Queue = queue.Queue()
    for i in range(args.runs):
        work.put(KINDS[i % len(KINDS)])
    tally = Tally()
    gc.collect()
    before = snapshot()
    print(f"soak: {args.runs} runs, {args.threads} threads + {args.tasks} asyncio tasks, local sandbox ({level})")
    print(f"private /dev/shm and /tmp: {'yes' if os.environ.get('RLM_SOAK_PRIVATE') else 'no (shared machine)'}")
    started = time.perf_counter()
    threads = [threading.Thread(target=sync_worker, args=(work, engines, tally)) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    asyncio.run(async_side(work, engines, tally, args.tasks))
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    engines.clear()
    gc.collect()
    time.sleep(args.settle)
    gc.collect()
    after = snapshot()
    print(f"\n{sum(tally.outcomes.values())} runs in {elapsed:.1f} s\n\n{'kind':20} outcome")
    for (name, outcome), n in sorted(tally.outcomes.items()):
        print(f"{name:20} {n:>3} x {outcome}")
    for surprise in tally.surprises[:20]:
        print("  unexpected:", surprise)
    leaks = report(before, after)
    print("fds after, by kind:", dict(_fd_kinds(after["fds"])))
    leftovers = {int(item.split(":")[0]) for key in after if key.startswith("processes") for item in after[key]}
    leftovers -= {int(item.split(":")[0]) for key in before if key.startswith("processes") for item in before[key]}
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    if leftovers:
        time.sleep(1.0)
        print(f"killed {len(leftovers)} leaked processes (by pid); then threads: {threading.active_count()}")
    print(f"\nresources leaked: {leaks}")


if __name__ == "__main__":
    main()
