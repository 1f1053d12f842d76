"""The parts of the `e2b` backend that do no I/O: the stdin outbox, the stdout preamble filter, the error texts."""

from __future__ import annotations

import threading
import warnings
from collections import deque
from typing import Any

from rlm_plugins.errors import SandboxStartError

PREAMBLE_LIMIT = 64 * 1024
"""The most non-protocol output tolerated before the driver's first message."""


class Outbox:
    """Bytes waiting for the driver's stdin, taken in order in pieces of at most `chunk` bytes. No I/O."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self._parts: deque[memoryview] = deque()
        self._lock = threading.Lock()

    def put(self, data: bytes) -> None:
        with self._lock:
            self._parts.append(memoryview(data))

    def take(self) -> bytes:
        """The next piece (several small messages may share one), or b"" when nothing waits."""
        with self._lock:
            out, size = [], 0
            while self._parts and size < self.chunk:
                part = self._parts.popleft()
                room = self.chunk - size
                if len(part) > room:
                    self._parts.appendleft(part[room:])
                    part = part[:room]
                out.append(part)
                size += len(part)
        return b"".join(out)


def exit_message(outcome: Any) -> str:
    """Why the driver's output stream ended: `handle.wait()`'s result or the exception it raised."""
    from e2b import CommandExitException

    if isinstance(outcome, CommandExitException):
        error = outcome.error or ""
        how = f"was stopped ({error})" if error.startswith("signal") else f"exited with code {outcome.exit_code}"
    elif isinstance(outcome, BaseException):
        return (
            f"lost the connection to the driver process in the E2B sandbox ({type(outcome).__name__}: {outcome}); "
            "the sandbox was stopped and its REPL state is lost"
        )
    else:
        how = "exited"
    return f"the driver process in the E2B sandbox {how}; its REPL state is lost"


def send_failure_message(exc: BaseException, send_timeout: float) -> str:
    from e2b import TimeoutException

    if isinstance(exc, TimeoutException):
        return (
            f"sending to the driver in the E2B sandbox took longer than send_timeout={send_timeout}s; the sandbox "
            "was stopped and its REPL state is lost. Raise send_timeout if the link to E2B is this slow"
        )
    return (
        f"could not send to the driver in the E2B sandbox ({type(exc).__name__}: {exc}); the sandbox was stopped "
        "and its REPL state is lost"
    )


class Output:
    """The driver's stdout before its first message, and the tail of its stderr.

    The SDK starts commands under `bash -l`, so a template's login scripts may print before the driver runs: those
    lines are not protocol, and join the stderr tail (which error messages quote) instead.
    """

    def __init__(self) -> None:
        self._preamble: bytes | None = b""
        self.tail = ""

    def stdout(self, data: bytes) -> bytes:
        """What of `data` belongs to the protocol stream."""
        if self._preamble is None:
            return data
        buf = self._preamble + data
        while not buf.startswith(b"{"):
            end = buf.find(b"\n")
            if end < 0 and len(buf) <= PREAMBLE_LIMIT:
                self._preamble = buf
                return b""
            if end < 0:
                break  # no newline in 64 KiB: hand it over, the protocol client reports it
            self.stderr(buf[: end + 1].decode("utf-8", "replace"))
            buf = buf[end + 1 :]
        self._preamble = None
        return buf

    def stderr(self, text: str) -> None:
        self.tail = (self.tail + text)[-4096:]

    def hint(self) -> str:
        tail = self.tail.strip()
        return f" (its last output: {tail[-500:]})" if tail else ""


def warn_leak(sandbox_id: str, exc: BaseException, lifetime: int) -> None:
    warnings.warn(
        f"could not kill the E2B sandbox {sandbox_id} ({type(exc).__name__}: {exc}); it stops by itself within "
        f"{lifetime}s, or kill it now with e2b.Sandbox.kill({sandbox_id!r})",
        RuntimeWarning,
        stacklevel=2,
    )


BUILD_HINT = "`python sandbox/template.py build` (see sandbox/README.md)"


def create_error(exc: BaseException, template: str | None) -> str:
    """Why `Sandbox.create` failed, and what to change."""
    msg = f"could not create an E2B sandbox from template {template or 'base'!r}: {type(exc).__name__}: {exc}"
    name = type(exc).__name__
    if name == "AuthenticationException":
        msg += "; check E2B_API_KEY (or pass api_key=...)"
    elif name in ("NotFoundException", "TemplateException") and template:
        msg += f"; build it with {BUILD_HINT} or pass template=None"
    return msg


def start_error(exc: Exception, output_hint: str, baked: tuple[str, str | None] | None) -> SandboxStartError:
    """The error for a sandbox that was created but whose driver did not answer; `baked` is (driver path,
    template) when the driver was expected in the template rather than uploaded."""
    hint = ""
    if baked is not None:
        hint = f" (is the driver at {baked[0]} in template {baked[1]!r}? build it with {BUILD_HINT}, or pass "
        hint += "upload_driver=True)"
    error = SandboxStartError(f"the E2B sandbox did not start: {exc}{output_hint}{hint}")
    error.__cause__ = exc
    return error


def version_error(driver_path: str, got: Any, want: int) -> str:
    return (
        f"the driver at {driver_path} speaks protocol version {got!r} and this host speaks {want}: rebuild the "
        f"template with {BUILD_HINT}, or pass upload_driver=True"
    )


def upload_warning(template_name: str) -> str:
    return (
        f"E2BSandbox uploads the driver into E2B's default template at every start; build the prebuilt template "
        f"once with {BUILD_HINT} and pass template={template_name!r} to skip this"
    )
