"""The E2B SDK side of the `e2b` backend: one sandbox and the one long-lived driver process inside it.

`SyncLink` drives an `e2b.Sandbox`, `AsyncLink` an `e2b.AsyncSandbox`. Both offer every operation in a sync and an
async form, so a sandbox started either way serves `execute` and `aexecute` alike, and neither form blocks an event
loop. The driver runs as `commands.run(cmd, background=True, stdin=True, timeout=0)` (envd kills a command when its
stream's timeout expires, so 0 is what keeps it alive); its stdout chunks go to `on_stdout` as they arrive. What the
protocol client writes is queued in an `Outbox` and sent in order by one writer (a thread, or a task on the
sandbox's loop) with `commands.send_stdin`, at most `chunk` bytes per call: `write` never blocks and may be called
from any thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from rlm_plugins._threads import in_thread
from rlm_plugins.errors import SandboxError
from rlm_plugins.repl._e2b_io import Outbox, exit_message, send_failure_message, warn_leak
from rlm_plugins.repl._e2b_upload import aiter_chunks

SEND_CHUNK_BYTES = 256 * 1024
"""The most bytes one `send_stdin` call carries. Neither the SDK nor envd caps a SendInput (envd writes the bytes
straight into the pipe and sets no connect read limit), but each call is one HTTP request whose JSON body carries the
bytes in base64 (4/3 of their size); 256 KiB pieces keep every request small for proxies on the way."""
KILL_TIMEOUT = 10.0


def kill_by_id(sandbox_id: str, pid: int | None, api: dict[str, Any], lifetime: int) -> None:
    """Kill a sandbox with the sync SDK, from any thread and without an event loop (interpreter exit)."""
    from e2b import Sandbox

    if pid is not None and api.get("debug"):  # debug mode's Sandbox.kill is a no-op: stop the driver itself
        try:
            Sandbox.connect(sandbox_id, **api).commands.kill(pid, request_timeout=KILL_TIMEOUT)
        except Exception:
            pass
    try:
        Sandbox.kill(sandbox_id, **api, request_timeout=KILL_TIMEOUT)
    except Exception as exc:
        warn_leak(sandbox_id, exc, lifetime)


class _Link:
    """What both flavours share: options, the outbox, the keep-alive arithmetic, the kill bookkeeping."""

    def __init__(
        self,
        create: dict[str, Any],
        *,
        lifetime: int,
        send_timeout: float,
        chunk: int,
        on_stdout: Callable[[str], None],
        on_stderr: Callable[[str], None],
        on_broken: Callable[[str], None],
    ) -> None:
        self.create = create
        self.api = {k: create[k] for k in ("api_key", "domain", "debug") if create.get(k) is not None}
        self.lifetime = lifetime
        self.send_timeout = send_timeout
        self.outbox = Outbox(chunk)
        self.on_stdout, self.on_stderr, self.on_broken = on_stdout, on_stderr, on_broken
        self.sbx: Any = None
        self.pid: int | None = None
        self.exited = False
        self.broken = False
        self._deadline = 0.0
        self._kill_lock = threading.Lock()
        self._kill: cf.Future | None = None

    @property
    def sandbox_id(self) -> str | None:
        return None if self.sbx is None else self.sbx.sandbox_id

    def _extension(self, busy: float) -> int | None:
        """Seconds to set as the sandbox's timeout so it outlives `busy` seconds of work plus `lifetime` idle;
        None while the current deadline is close enough (at most a quarter of `lifetime` short)."""
        want = busy + self.lifetime
        if time.monotonic() + want - self._deadline <= self.lifetime / 4:
            return None
        return int(want + 1)

    def _extended(self, seconds: int) -> None:
        self._deadline = time.monotonic() + seconds

    def _ended(self, outcome: Any) -> None:
        from e2b import CommandExitException

        # an end event means the process is gone; a dropped stream says nothing about it: it may still run
        self.exited = isinstance(outcome, CommandExitException) or not isinstance(outcome, BaseException)
        self.on_broken(exit_message(outcome))

    def _send_failed(self, exc: BaseException) -> None:
        self.broken = True
        self.on_broken(send_failure_message(exc, self.send_timeout))

    def kill_soon(self) -> cf.Future:
        """Start killing the driver and the sandbox, once; never blocks. The future is done when it is over.
        Before the sandbox exists there is nothing to kill, and nothing is remembered: a later call kills it."""
        with self._kill_lock:
            if self._kill is None:
                if self.sbx is None:
                    nothing: cf.Future = cf.Future()
                    nothing.set_result(None)
                    return nothing
                self._kill = self._start_kill()
            return self._kill

    def _start_kill(self) -> cf.Future:
        fut: cf.Future = cf.Future()

        def run() -> None:
            try:
                self._kill_now()
            finally:
                fut.set_result(None)

        threading.Thread(target=run, name="rlm-e2b-kill", daemon=True).start()
        return fut

    def _kill_now(self) -> None:
        if self.sbx is not None:
            kill_by_id(self.sbx.sandbox_id, None if self.exited else self.pid, self.api, self.lifetime)

    def kill_wait(self, timeout: float = KILL_TIMEOUT * 2) -> None:
        try:
            self.kill_soon().result(timeout)
        except Exception:
            pass

    async def akill_wait(self, timeout: float = KILL_TIMEOUT * 2) -> None:
        try:
            await asyncio.wait_for(asyncio.wrap_future(self.kill_soon()), timeout)
        except Exception:
            pass


class SyncLink(_Link):
    """Over `e2b.Sandbox`: a reader thread and a writer thread per sandbox."""

    def __init__(self, create: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(create, **kwargs)
        self._cv = threading.Condition()
        self._stopping = False

    def check_sync(self) -> None:
        pass

    def open(self) -> None:
        from e2b import Sandbox

        self.sbx = Sandbox.create(**self.create)
        self._extended(self.lifetime)

    def upload(self, path: str, body: Any, gzip: bool) -> None:
        self.sbx.files.write(path, body, gzip=gzip, use_octet_stream=True)

    async def aupload(self, path: str, body: Any, gzip: bool) -> None:
        await in_thread(self.upload, path, body, gzip)

    def remove(self, path: str) -> None:
        try:
            self.sbx.files.remove(path, request_timeout=KILL_TIMEOUT)
        except Exception:
            pass

    async def aremove(self, path: str) -> None:
        await in_thread(self.remove, path)

    def extend(self, busy: float) -> None:
        seconds = self._extension(busy)
        if seconds is not None:
            try:
                self.sbx.set_timeout(seconds)
            except Exception as exc:
                warnings.warn(f"could not extend the E2B sandbox's timeout: {exc}", RuntimeWarning, stacklevel=3)
            self._extended(seconds)

    async def aextend(self, busy: float) -> None:
        if self._extension(busy) is not None:
            await in_thread(self.extend, busy)

    def run(self, cmd: str) -> None:
        handle = self.sbx.commands.run(cmd, background=True, stdin=True, timeout=0, retain_output=False)
        self.pid = handle.pid
        threading.Thread(target=self._read, args=(handle,), name="rlm-e2b-out", daemon=True).start()
        threading.Thread(target=self._send_loop, name="rlm-e2b-in", daemon=True).start()

    def _read(self, handle: Any) -> None:
        try:
            outcome: Any = handle.wait(on_stdout=self.on_stdout, on_stderr=self.on_stderr)
        except Exception as exc:
            outcome = exc
        self._ended(outcome)

    def write(self, data: bytes) -> None:
        if self.broken or self._stopping:
            raise OSError("the driver in the E2B sandbox is no longer reachable")
        with self._cv:
            self.outbox.put(data)
            self._cv.notify()

    def _send_loop(self) -> None:
        while True:
            with self._cv:
                while not self._stopping and not (piece := self.outbox.take()):
                    self._cv.wait()
            if self._stopping:
                return
            while piece:
                try:
                    self.sbx.commands.send_stdin(self.pid, piece, request_timeout=self.send_timeout)
                except Exception as exc:
                    self._send_failed(exc)
                    return
                piece = self.outbox.take()

    def _kill_now(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self.sbx is None:
            return
        if self.pid is not None and not self.exited:
            try:
                self.sbx.commands.kill(self.pid, request_timeout=KILL_TIMEOUT)
            except Exception:
                pass
        try:
            self.sbx.kill(request_timeout=KILL_TIMEOUT)
        except Exception as exc:
            warn_leak(self.sbx.sandbox_id, exc, self.lifetime)


class AsyncLink(_Link):
    """Over `e2b.AsyncSandbox`, on the event loop that opened it: the SDK's output task and a writer task."""

    loop: asyncio.AbstractEventLoop

    def __init__(self, create: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(create, **kwargs)
        self._thread = 0
        self._watcher: asyncio.Task | None = None
        self._sender: asyncio.Task | None = None
        self._handle: Any = None

    def _on_loop(self) -> bool:
        """Whether the caller runs inside the sandbox's (still running) event loop."""
        return threading.get_ident() == self._thread and self._loop_alive()

    def _loop_alive(self) -> bool:
        loop = getattr(self, "loop", None)
        return loop is not None and not loop.is_closed() and loop.is_running()

    def check_sync(self) -> None:
        if self._on_loop():
            raise SandboxError(
                "this sandbox was started with astart(); inside its event loop use aload/aexecute/aclose"
            )
        if not self._loop_alive():
            raise SandboxError("the event loop this sandbox was started on is no longer running; create a new one")

    def _sync(self, coro: Any) -> Any:
        self.check_sync()
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def open(self) -> None:
        from e2b import AsyncSandbox

        self.loop, self._thread = asyncio.get_running_loop(), threading.get_ident()
        self.sbx = await AsyncSandbox.create(**self.create)
        self._extended(self.lifetime)

    async def aupload(self, path: str, body: Any, gzip: bool) -> None:
        data = body if isinstance(body, (bytes, str)) or hasattr(body, "read") else aiter_chunks(body)
        await self.sbx.files.write(path, data, gzip=gzip, use_octet_stream=True)

    def upload(self, path: str, body: Any, gzip: bool) -> None:
        self._sync(self.aupload(path, body, gzip))

    async def aremove(self, path: str) -> None:
        try:
            await self.sbx.files.remove(path, request_timeout=KILL_TIMEOUT)
        except Exception:
            pass

    def remove(self, path: str) -> None:
        self._sync(self.aremove(path))

    async def aextend(self, busy: float) -> None:
        seconds = self._extension(busy)
        if seconds is not None:
            try:
                await self.sbx.set_timeout(seconds)
            except Exception as exc:
                warnings.warn(f"could not extend the E2B sandbox's timeout: {exc}", RuntimeWarning, stacklevel=3)
            self._extended(seconds)

    def extend(self, busy: float) -> None:
        if self._extension(busy) is not None:
            self._sync(self.aextend(busy))

    async def run(self, cmd: str) -> None:
        handle = await self.sbx.commands.run(
            cmd, background=True, stdin=True, timeout=0, on_stdout=self.on_stdout, on_stderr=self.on_stderr,
            retain_output=False,
        )  # fmt: skip
        self._handle, self.pid = handle, handle.pid
        self._watcher = self.loop.create_task(self._watch(handle))

    async def _watch(self, handle: Any) -> None:
        try:
            outcome: Any = await handle.wait()
        except Exception as exc:
            outcome = exc
        self._ended(outcome)

    def write(self, data: bytes) -> None:
        if self.broken:
            raise OSError("the driver in the E2B sandbox is no longer reachable")
        self.outbox.put(data)
        if self._on_loop():
            self._ensure_sender()
            return
        try:
            self.loop.call_soon_threadsafe(self._ensure_sender)
        except RuntimeError as exc:
            raise OSError(f"the event loop of this E2B sandbox is closed ({exc})") from exc

    def _ensure_sender(self) -> None:
        """On the loop: start a sender unless one is running. A sender lives only while bytes wait, so an idle
        sandbox leaves no task behind for the loop's shutdown to cancel."""
        if not self.broken and (self._sender is None or self._sender.done()):
            self._sender = self.loop.create_task(self._send())

    async def _send(self) -> None:
        while piece := self.outbox.take():
            try:
                await self.sbx.commands.send_stdin(self.pid, piece, request_timeout=self.send_timeout)
            except Exception as exc:
                self._send_failed(exc)
                return

    def _start_kill(self) -> cf.Future:
        if self._loop_alive():
            return asyncio.run_coroutine_threadsafe(self._akill_now(), self.loop)
        return super()._start_kill()  # no loop left (interpreter exit): the sync SDK does it

    def kill_wait(self, timeout: float = KILL_TIMEOUT * 2) -> None:
        if self._on_loop():  # a sync close() inside the loop: the kill runs as soon as the caller yields
            self.kill_soon()
            return
        super().kill_wait(timeout)

    async def _akill_now(self) -> None:
        self.broken = True
        if self._sender is not None:
            self._sender.cancel()
        if self.pid is not None and not self.exited:
            try:
                await self.sbx.commands.kill(self.pid, request_timeout=KILL_TIMEOUT)
            except Exception:
                pass
        try:
            await self.sbx.kill(request_timeout=KILL_TIMEOUT)
        except Exception as exc:
            warn_leak(self.sbx.sandbox_id, exc, self.lifetime)
        if self._watcher is not None and not self._watcher.done():
            await asyncio.wait([self._watcher], timeout=1.0)
            if not self._watcher.done() and self._handle is not None:
                await self._handle.disconnect()
                self._watcher.cancel()
