"""The local sandbox's pipes, each owned by the one thread that reads or writes it, which alone closes it.

`close()` never closes a descriptor another thread may still use (the number could then be reused by the next
sandbox, and the old reader would steal its messages): it wakes the threads, and each closes its own pipe on the
way out. `write()` never blocks: what the pipe cannot take at once waits, in order, for a writer thread, so a frozen
sandbox can hold neither the event loop, nor the reader, nor `close()`.
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

READ_SIZE = 1024 * 1024
PIPE_SIZE = 1024 * 1024
TAIL_BYTES = 4096


class _Waker:
    """A pipe that becomes readable, for good, when `wake()` is called; closed when its last user releases it."""

    def __init__(self, users: int) -> None:
        self.rfd, self.wfd = os.pipe()
        self._users = users
        self._lock = threading.Lock()
        self._woken = False

    def acquire(self) -> bool:
        """One more user; False when the last one has already gone (the pipe is closed)."""
        with self._lock:
            if self._users == 0:
                return False
            self._users += 1
            return True

    def wake(self) -> None:
        with self._lock:
            if not self._woken and self._users > 0:
                self._woken = True
                os.write(self.wfd, b"x")

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                os.close(self.rfd)
                os.close(self.wfd)


class Pipes:
    """A process's stdin, stdout and stderr descriptors (this object owns them), served by daemon threads.

    Args:
        stdin, stdout, stderr: descriptors handed over; nobody else may close them.
        on_stdout, on_stderr: called with each chunk read (on the reader threads); they must not raise.
        on_eof: called once stdout ends by itself (the process closed it or died), not after `close()`.
    """

    def __init__(
        self,
        stdin: int,
        stdout: int,
        stderr: int,
        *,
        on_stdout: Callable[[bytes], None],
        on_stderr: Callable[[bytes], None],
        on_eof: Callable[[], None],
    ) -> None:
        self._stdin = stdin
        os.set_blocking(stdin, False)
        self._waker = _Waker(users=2)
        self._lock = threading.Lock()
        self._pending: deque[memoryview] = deque()
        self._writer_active = False
        self._closed = False
        self._broken: OSError | None = None
        threading.Thread(
            target=self._read, args=(stdout, on_stdout, on_eof), name="rlm-sandbox-out", daemon=True
        ).start()
        threading.Thread(target=self._read, args=(stderr, on_stderr, None), name="rlm-sandbox-err", daemon=True).start()

    def _read(self, fd: int, sink: Callable[[bytes], None], on_eof: Callable[[], None] | None) -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self._waker.rfd, select.POLLIN)
        ended = False
        try:
            while True:
                events = dict(poller.poll())
                if self._waker.rfd in events:
                    break
                chunk = os.read(fd, READ_SIZE)
                if not chunk:
                    ended = True
                    break
                sink(chunk)
        except OSError:
            ended = True
        finally:
            os.close(fd)
            self._waker.release()
        if ended and on_eof is not None and not self._closed:
            on_eof()

    def write(self, data: bytes) -> None:
        """Queue `data` for the process's stdin, in order; never blocks. Raises OSError once the pipe is gone."""
        with self._lock:
            if self._closed or self._broken is not None:
                raise self._broken or OSError("the sandbox's stdin is closed")
            view = memoryview(data)
            if not self._pending:
                try:
                    view = view[os.write(self._stdin, view) :]
                except BlockingIOError:
                    pass
                except OSError as exc:
                    self._broken = exc
                    raise
                if not view:
                    return
            if not self._writer_active:
                if not self._waker.acquire():
                    self._broken = OSError("the sandbox process has exited")
                    raise self._broken
                self._writer_active = True
                threading.Thread(target=self._drain, name="rlm-sandbox-in", daemon=True).start()
            self._pending.append(view)

    def _drain(self) -> None:
        """Write what waits whenever the pipe has room; ends when nothing waits, or on close (closing stdin)."""
        try:
            poller = select.poll()
            poller.register(self._stdin, select.POLLOUT)
            poller.register(self._waker.rfd, select.POLLIN)
            while not self._drained(dict(poller.poll())):
                pass
        finally:
            self._waker.release()

    def _drained(self, events: dict[int, int]) -> bool:
        with self._lock:
            if self._closed or self._waker.rfd in events:
                self._writer_active = False
                self._close_stdin()
                return True
            try:
                while self._pending:
                    head = self._pending[0]
                    written = os.write(self._stdin, head)
                    if written < len(head):
                        self._pending[0] = head[written:]
                        break
                    self._pending.popleft()
            except BlockingIOError:
                pass
            except OSError as exc:
                self._broken = exc
                self._pending.clear()
            if not self._pending:
                self._writer_active = False
                return True
            return False

    def _close_stdin(self) -> None:
        if self._stdin >= 0:
            os.close(self._stdin)
            self._stdin = -1

    def close(self) -> None:
        """Wake every thread; each closes its own pipe (stdin, here, unless a writer thread holds it). Never blocks."""
        with self._lock:
            self._closed = True
            if not self._writer_active:
                self._close_stdin()
        self._waker.wake()


def own_pipes(proc: subprocess.Popen[bytes], on_stdout: Any, on_stderr: Any, on_exit: Any) -> Pipes:
    """Take the process's pipes out of `proc` (widened) and hand them to `Pipes`, which alone closes them."""
    fds = []
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        assert stream is not None
        fds.append(os.dup(stream.fileno()))
        stream.close()
    proc.stdin = proc.stdout = proc.stderr = None
    for fd in fds[:2]:
        _widen(fd)
    return Pipes(*fds, on_stdout=on_stdout, on_stderr=on_stderr, on_eof=on_exit)


def _widen(fd: int) -> None:
    """Grow a pipe's buffer (64 KiB by default) so large messages cross in fewer, bigger writes."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
    except OSError:
        pass


class StderrTail:
    """The last `TAIL_BYTES` a process wrote to stderr, for error messages."""

    def __init__(self) -> None:
        self._tail = bytearray()

    def feed(self, chunk: bytes) -> None:
        self._tail = (self._tail + chunk)[-TAIL_BYTES:]

    def hint(self) -> str:
        """The end of what the process wrote to stderr, for an error message ("" when it wrote nothing)."""
        tail = bytes(self._tail).decode("utf-8", "replace").strip()
        return f" (its last output: {tail[-500:]})" if tail else ""


class PipeChannel:
    """A child process's pipes as a driver channel (`Pipes` underneath), plus the tail of its stderr.

    Used by backends whose driver talks over a child's stdin/stdout (the docker engine CLI). When stdout ends by
    itself, `on_exit(returncode)` is called.
    """

    def __init__(self, proc: subprocess.Popen[bytes], on_exit: Callable[[int], None], name: str) -> None:
        self.proc = proc
        self._on_exit = on_exit
        self._name = name
        self.stderr = StderrTail()
        self._pipes: Pipes | None = None

    def write(self, data: bytes) -> None:
        if self._pipes is None:
            raise OSError("sandbox is not running")
        self._pipes.write(data)

    def serve(self, sink: Any) -> None:
        """Start reading stdout into `sink.feed` and stderr into the tail."""
        self._pipes = own_pipes(self.proc, sink.feed, self.stderr.feed, lambda: self._on_exit(self.proc.wait()))

    def hint(self) -> str:
        """The end of what the process wrote to stderr, for an error message ("" when it wrote nothing)."""
        return self.stderr.hint()

    def close(self) -> None:
        if self._pipes is not None:
            self._pipes.close()
