"""The `local` sandbox: the driver in an isolated subprocess on this machine."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from rlm_plugins.errors import (
    ConfigurationError,
    IsolationUnavailableError,
    SandboxClosedError,
    SandboxError,
    SandboxStartError,
    SandboxTerminatedError,
)
from rlm_plugins.repl import isolation
from rlm_plugins.repl._ascii import ascii_view
from rlm_plugins.repl._client import DEFAULT_MAX_LINE_BYTES, DriverClient
from rlm_plugins.repl._pipes import Pipes, StderrTail, own_pipes
from rlm_plugins.repl.base import BaseSandbox, ExecResult, Format, IsolationLevel, Tool, plan_load
from rlm_plugins.repl.isolation import Limits

IsolationOption = Literal["auto", "require", "bwrap", "namespace", "none"]
_CHUNK = 8 * 1024 * 1024


def _shm_dir() -> str | None:
    """A tmpfs directory for context files when the machine has one (writing there costs a third of disk)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class LocalSandbox(BaseSandbox):
    """Runs REPL code in a subprocess, isolated as far as this machine allows.

    `isolation` is "auto" (the best level available, with a warning when that is none), "require" (the best
    level, refused unless it gives every guarantee in `isolation.TENANT_GUARANTEES`), or a level to insist on:
    "bwrap", "namespace", "none". The level in force is in `sandbox.isolation` after `start()`, and what it
    guarantees on this host in `sandbox.guarantees`. `memory_limit` and `disk_limit` (bytes a sandbox may write
    in total) override the matching fields of `limits`.

    Examples:
        >>> with LocalSandbox() as sb:
        ...     sb.load("context", "hello world")
        ...     sb.execute("len(context)").stdout
        '11\\n'
    """

    kind = "local"

    def __init__(
        self,
        *,
        isolation: IsolationOption = "auto",
        limits: Limits | None = None,
        memory_limit: int | None = None,
        disk_limit: int | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if isolation not in ("auto", "require", "bwrap", "namespace", "none"):
            msg = f"isolation={isolation!r} is not one of 'auto', 'require', 'bwrap', 'namespace', 'none'"
            raise ConfigurationError(msg)
        self.requested_isolation = isolation
        limits = limits or Limits()
        if memory_limit is not None:
            limits = replace(limits, memory=memory_limit)
        if disk_limit is not None:
            limits = replace(limits, disk=disk_limit)
        self.limits = limits
        self.max_line_bytes = max_line_bytes
        self.isolation: IsolationLevel = "none"
        self.guarantees: frozenset[str] = frozenset()
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: DriverClient | None = None
        self._fd_sock: socket.socket | None = None
        self._tenancy: isolation.Tenancy | None = None
        self._pipes: Pipes | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._hello: Any = None
        self._group_swept = False
        self._stderr = StderrTail()

    def _choose_level(self) -> IsolationLevel:
        wanted = self.requested_isolation
        if wanted in ("bwrap", "namespace"):
            if not isolation.available(wanted):
                msg = f"isolation={wanted!r} is not available on this machine; use isolation='auto' to take the best"
                raise IsolationUnavailableError(msg)
            return wanted
        if wanted == "none":
            return "none"
        level = isolation.best_level()
        if level == "none":
            if wanted == "require":
                msg = (
                    "isolation='require' but neither bubblewrap nor namespaces work here: install bubblewrap "
                    "(apt-get install bubblewrap) or pass isolation='none' to run unisolated"
                )
                raise IsolationUnavailableError(msg)
            warnings.warn(
                "the local sandbox runs WITHOUT isolation (no bubblewrap, no namespaces): model-written code can "
                "read your files and reach the network. Install bubblewrap to isolate it.",
                RuntimeWarning,
                stacklevel=4,
            )
        return level

    def start(self) -> None:
        self._spawn_checked()
        self._greeted()

    def _spawn_checked(self) -> None:
        try:
            self._spawn()
        except OSError as exc:  # no temp dir, no descriptors left, ...: still a SandboxError
            raise SandboxStartError(f"could not prepare the sandbox: {exc}") from exc

    def _spawn(self) -> None:
        """Start the process and send `hello` without waiting, so the caller can stage a context meanwhile."""
        with self._start_lock:
            if self._closed:
                raise SandboxClosedError("this sandbox was closed; create a new one")
            if self._proc is not None:
                return
            level = self._choose_level()
            self._proc = self._launch(level)
            self.isolation = level
            self._client = DriverClient(self._write, on_fatal=self._kill, max_line_bytes=self.max_line_bytes)
            self._pipes = own_pipes(self._proc, self._client.feed, self._stderr.feed, self._on_exit)
            self._track()
            hello = {
                "type": "hello",
                "max_output_chars": self.max_output_chars,
                "final_fields": self.final_fields,
                "tools": [],
            }
            self._hello = self._client.request(hello)

    def _launch(self, level: IsolationLevel) -> subprocess.Popen[bytes]:
        """Take the sandbox's identity and cgroups, and start its process with the descriptor socket's far end."""
        try:
            self._tenancy = tenancy = isolation.hold(level, self.limits)
        except OSError as exc:
            raise SandboxStartError(f"could not set up the sandbox: {exc}") from exc
        host_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            launch = isolation.build(level, self.limits, ["--fd-socket", str(child_sock.fileno())], tenancy)
            if self.requested_isolation == "require":
                isolation.check_required(launch, self.limits)
            proc = subprocess.Popen(
                launch.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=launch.env,
                cwd=launch.cwd,
                pass_fds=(child_sock.fileno(),),
                start_new_session=True,
                bufsize=0,
            )
        except BaseException as exc:
            host_sock.close()
            tenancy.release()
            self._tenancy = None
            if isinstance(exc, OSError):
                raise SandboxStartError(f"could not start the sandbox process: {exc}") from exc
            raise
        finally:
            child_sock.close()
        self._fd_sock = host_sock
        self.guarantees = launch.guarantees
        return proc

    def _greeted(self) -> None:
        """Wait for the driver's answer to `hello`, once; a sandbox that never answers is closed."""
        with self._start_lock:
            hello, self._hello = self._hello, None
        if hello is None:
            return
        assert self._client is not None
        try:
            self._client.result(hello, timeout=30)
        except SandboxError as exc:
            self.close()
            raise SandboxStartError(f"the sandbox did not start: {exc}{self._stderr.hint()}") from exc

    def _write(self, data: bytes) -> None:
        if self._pipes is None:
            raise OSError("sandbox is not running")
        self._pipes.write(data)

    def _on_exit(self) -> None:
        """The driver's stdout ended by itself: the process is gone (or going), and every waiter learns why."""
        proc, client = self._proc, self._client
        assert proc is not None and client is not None
        code = proc.wait()
        if not self._closed:
            client.fail(SandboxTerminatedError(self._death_message(code)))

    def _death_message(self, code: int) -> str:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return f"the sandbox process {how}; its REPL state is lost{self._stderr.hint()}"

    def _ready(self) -> DriverClient:
        if self._closed:
            raise SandboxClosedError("this sandbox was closed; create a new one")
        if self._client is None or self._hello is not None:  # not started, or not yet greeted: off the hot path
            self.start()
        assert self._client is not None
        if self._client.dead is not None:
            raise self._client.dead
        return self._client

    def load(self, name: str, value: Any, format: Format | None = None) -> dict[str, Any]:
        fmt, inline = plan_load(name, value, format)
        if inline is not None:
            return self._ready().call(inline, timeout=60)["info"]
        if self._closed:
            raise SandboxClosedError("this sandbox was closed; create a new one")
        self._spawn_checked()
        try:
            fd = self._stage(value, fmt)
        except OSError as exc:
            raise SandboxError(f"could not stage {name!r} for the sandbox: {exc}") from exc
        try:
            client = self._ready()
            assert self._fd_sock is not None
            socket.send_fds(self._fd_sock, [b"f"], [fd])
        except OSError as exc:
            dead = SandboxTerminatedError(f"the sandbox stopped taking values ({exc}); its REPL state is lost")
            self._client.fail(dead)  # type: ignore[union-attr]
            raise dead from exc
        finally:
            os.close(fd)
        return client.call({"type": "load", "name": name, "format": fmt, "fd": True}, timeout=600)["info"]

    def _stage(self, value: Any, fmt: Format) -> int:
        """An open, read-only descriptor holding the value: the user's own file, or an unlinked tmpfs file."""
        if isinstance(value, pathlib.Path):
            try:
                return os.open(value, os.O_RDONLY)
            except OSError as exc:
                raise ConfigurationError(f"cannot read the context file {str(value)!r}: {exc.strerror}") from exc
        fd, path = tempfile.mkstemp(prefix="rlm-ctx-", dir=_shm_dir())
        try:
            os.unlink(path)
            _reserve(fd, value)
            with os.fdopen(os.dup(fd), "wb") as out:
                _write_value(out, value, fmt)
            return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
        finally:
            os.close(fd)

    def execute(self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None) -> ExecResult:
        client = self._ready()
        with self._one_execution():
            return client.execute(code, tools or {}, timeout or self.timeout, self.grace)

    async def aexecute(
        self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None
    ) -> ExecResult:
        if not self._closed and (self._client is None or self._hello is not None):
            await self.astart()  # on a worker thread: starting a process never blocks the event loop
        client = self._ready()
        with self._one_execution():
            return await client.aexecute(code, tools or {}, timeout or self.timeout, self.grace)

    def _kill(self) -> None:
        """SIGKILL the sandbox's process group, including children that outlived the driver.

        Children forked by user code keep running after the driver exits, so the group is swept once more right
        after the leader is gone; never later, as the group id may then be reused.
        """
        proc = self._proc
        if self._tenancy is not None:
            self._tenancy.kill()
        if proc is None or self._group_swept:
            return
        leader_gone = proc.poll() is not None
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except OSError:
            if not leader_gone:
                proc.kill()
        self._group_swept = leader_gone

    def cancel(self) -> None:
        if self._client is not None and not self._closed:
            self._client.cancel(self.grace)

    def close(self) -> None:
        """Kill the process group first, then release the pipes and files: bounded time, whatever the code does."""
        if self._closed:
            return
        self._closed = True
        proc = self._proc
        if proc is not None:
            self._kill()
            if self._pipes is not None:
                self._pipes.close()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            self._kill()
        if self._client is not None:
            self._client.fail(SandboxClosedError("this sandbox was closed; create a new one"))
            self._client.shutdown()
        if self._fd_sock is not None:
            self._fd_sock.close()
        if self._tenancy is not None:
            self._tenancy.release()
        self._untrack()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and getattr(self, "_proc", None) is not None:
            self._kill()


def _reserve(fd: int, value: Any) -> None:
    """Allocate the file's pages up front: filling a tmpfs file that already has them is about twice as fast.

    A str's UTF-8 form is never shorter than the str, so its length is a safe lower bound.
    """
    size = len(value) if isinstance(value, (str, bytes, bytearray)) else 0
    if size > _CHUNK:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError:
            pass


def _write_value(out: Any, value: Any, fmt: Format) -> None:
    if fmt == "text":
        text = value if isinstance(value, str) else str(value)
        view = ascii_view(text)
        if view is not None:
            out.write(view)
            return
        for i in range(0, len(text), _CHUNK):
            out.write(text[i : i + _CHUNK].encode("utf-8", "surrogateescape"))
    elif fmt in ("bytes", "mmap"):
        out.write(value if isinstance(value, (bytes, bytearray, memoryview)) else str(value).encode())
    else:
        json.dump(value, _TextSink(out), ensure_ascii=False, default=str)


class _TextSink:
    def __init__(self, out: Any) -> None:
        self.out = out

    def write(self, text: str) -> None:
        self.out.write(text.encode("utf-8", "surrogateescape"))
