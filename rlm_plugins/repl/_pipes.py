"""A child process's stdin and stdout as the driver channel, and the tail of its stderr for error messages.

Used by the docker sandbox (the attached engine CLI); it fits any backend whose driver talks over a child's pipes.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable

from rlm_plugins.repl._client import DriverClient

_READ_SIZE = 1024 * 1024
_TAIL_BYTES = 4096


class PipeChannel:
    """Writes protocol lines to `proc`'s stdin and feeds its stdout to a `DriverClient` on a reader thread.

    When stdout ends, `on_exit(returncode)` is called (the process is gone, or about to be).
    """

    def __init__(self, proc: subprocess.Popen[bytes], on_exit: Callable[[int], None], name: str) -> None:
        self.proc = proc
        self._on_exit = on_exit
        self._name = name
        self._lock = threading.Lock()
        self._tail = bytearray()

    def write(self, data: bytes) -> None:
        if self.proc.stdin is None:
            raise OSError("sandbox is not running")
        with self._lock:
            self.proc.stdin.write(data)

    def serve(self, client: DriverClient) -> None:
        """Start the reader threads of stdout (into `client`) and stderr (into the tail)."""
        threading.Thread(target=self._read_stdout, args=(client,), name=f"{self._name}-out", daemon=True).start()
        threading.Thread(target=self._read_stderr, name=f"{self._name}-err", daemon=True).start()

    def _read_stdout(self, client: DriverClient) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while chunk := os.read(fd, _READ_SIZE):
            client.feed(chunk)
        self._on_exit(self.proc.wait())

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := self.proc.stderr.read(65536):
            self._tail = (self._tail + chunk)[-_TAIL_BYTES:]

    def hint(self) -> str:
        """The end of what the process wrote to stderr, for an error message ("" when it wrote nothing)."""
        tail = bytes(self._tail).decode("utf-8", "replace").strip()
        return f" (its last output: {tail[-500:]})" if tail else ""

    def close(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
