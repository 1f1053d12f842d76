"""The `e2b` sandbox: the driver as one long-lived process in an E2B cloud VM.

The same `driver.py` every backend runs is started once per sandbox with `commands.run(background=True, stdin=True,
timeout=0)`; protocol lines travel over its stdout and `send_stdin`. There is no HTTP broker in the sandbox, no
public port, no polling, no pip install at run time and no pickled state between cells. A context is uploaded once
with `files.write` (streamed; gzip-compressed on the wire when large) and read by the driver from that file.

The prebuilt template (`sandbox/template.py`) bakes the driver in at `TEMPLATE_DRIVER_PATH`. Without a template the
driver is uploaded into E2B's default template at every start, which costs one small upload.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import os
import pathlib
import secrets
import shlex
import threading
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from rlm_plugins.errors import (
    ConfigurationError,
    SandboxClosedError,
    SandboxError,
    SandboxStartError,
    SandboxTerminatedError,
)
from rlm_plugins.repl import driver as _driver
from rlm_plugins.repl._client import DEFAULT_MAX_LINE_BYTES, DriverClient
from rlm_plugins.repl._e2b_io import Output, create_error, start_error, upload_warning, version_error
from rlm_plugins.repl._e2b_link import SEND_CHUNK_BYTES, AsyncLink, SyncLink
from rlm_plugins.repl._e2b_upload import open_source, should_compress
from rlm_plugins.repl.base import BaseSandbox, ExecResult, Format, IsolationLevel, Tool, plan_load

try:
    import e2b  # noqa: F401 - fail at import, with the fix, rather than at start()
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the e2b sandbox needs the E2B SDK: pip install 'rlm-plugins[e2b]'") from exc

TEMPLATE_DRIVER_PATH = "/opt/rlm/driver.py"
"""Where the prebuilt template bakes the driver in (sandbox/template.py reads this constant)."""
TEMPLATE_NAME = "rlm-plugins"
"""The name `python sandbox/template.py build` gives the template; pass it as `template=`."""
DEFAULT_WORKDIR = "/tmp/rlm"
START_TIMEOUT = 60.0
_warned_upload = False


class E2BSandbox(BaseSandbox):
    """Runs REPL code in an E2B cloud sandbox (a Firecracker microVM per sandbox).

    Args:
        template: An E2B template name or id. None uses E2B's default template and uploads the driver at start
            (warned once); `python sandbox/template.py build` builds `TEMPLATE_NAME` with the driver baked in.
        timeout: Seconds the E2B sandbox lives while idle (E2B's own `timeout`, default 300). Every execution
            pushes the deadline past its own time limit, so a long run is never cut off, and a crashed host leaks
            the sandbox for at most about this long.
        metadata: E2B metadata for the sandbox; `{"created_by": "rlm-plugins"}` is added.
        envs: Environment variables of the sandbox.
        api_key: The E2B API key; defaults to `E2B_API_KEY`.
        debug: E2B debug mode (defaults to `E2B_DEBUG=true`): no control plane, envd at localhost:49983.
        exec_timeout: The default time limit of one execution, in seconds.
        workdir: Directory in the sandbox for the uploaded driver and context files.
        upload_driver: Upload the driver at start; defaults to True without a template, False with one.
        driver_path: Where the driver is in the sandbox; defaults to `TEMPLATE_DRIVER_PATH` for a template.
        python: The interpreter command in the sandbox.
        compress: gzip context uploads on the wire (envd stores them uncompressed). None (the default) does it for
            uploads of 1 MiB or more that are not compressed already; it pays when the link to E2B is slower than
            gzip (roughly 20-40 MB/s per core), so pass False from a host with a fast link to E2B.
        send_timeout: Seconds one `send_stdin` may take before the sandbox is declared unreachable.
        send_chunk_bytes: The most bytes one `send_stdin` carries.
        max_line_bytes: The largest protocol message accepted from the sandbox.
        **options: `max_output_chars`, `grace`, `final_fields` (see `BaseSandbox`).

    Examples:
        >>> with E2BSandbox(template="rlm-plugins") as sb:  # doctest: +SKIP
        ...     sb.load("context", "hello world")
        ...     sb.execute("len(context)").stdout
        '11\\n'
    """

    kind = "e2b"

    def __init__(
        self,
        *,
        template: str | None = None,
        timeout: int = 300,
        metadata: Mapping[str, str] | None = None,
        envs: Mapping[str, str] | None = None,
        api_key: str | None = None,
        domain: str | None = None,
        debug: bool | None = None,
        exec_timeout: float = 300.0,
        workdir: str = DEFAULT_WORKDIR,
        upload_driver: bool | None = None,
        driver_path: str | None = None,
        python: str = "python3",
        compress: bool | None = None,
        send_timeout: float = 30.0,
        send_chunk_bytes: int = SEND_CHUNK_BYTES,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        **options: Any,
    ) -> None:
        super().__init__(timeout=exec_timeout, **options)
        if not isinstance(timeout, int) or timeout <= 0:
            msg = f"timeout={timeout!r}: the E2B sandbox's idle lifetime in whole seconds (per execution: exec_timeout)"
            raise ConfigurationError(msg)
        if send_chunk_bytes <= 0 or send_timeout <= 0:
            raise ConfigurationError("send_chunk_bytes and send_timeout must be positive")
        self.debug = debug if debug is not None else os.environ.get("E2B_DEBUG", "false").lower() == "true"
        key = api_key or os.environ.get("E2B_API_KEY")
        if not key and not self.debug:
            msg = "E2B needs an API key: set E2B_API_KEY or pass api_key=...; or debug=True for a local envd"
            raise ConfigurationError(msg)
        self.template = template
        self.sandbox_timeout = timeout
        self.upload_driver = template is None if upload_driver is None else upload_driver
        self.session_dir = f"{workdir.rstrip('/')}/{secrets.token_hex(4)}"
        self.driver_path = driver_path or (
            f"{self.session_dir}/driver.py" if self.upload_driver else TEMPLATE_DRIVER_PATH
        )
        global _warned_upload
        if self.upload_driver and template is None and not _warned_upload:
            _warned_upload = True
            warnings.warn(upload_warning(TEMPLATE_NAME), UserWarning, stacklevel=2)
        self.python = python
        self.compress = compress
        self.send_timeout = send_timeout
        self.send_chunk_bytes = send_chunk_bytes
        self.max_line_bytes = max_line_bytes
        self.isolation: IsolationLevel = "vm"
        self._create: dict[str, Any] = {
            "template": template,
            "timeout": timeout,
            "metadata": {"created_by": "rlm-plugins", **dict(metadata or {})},
            "envs": dict(envs) if envs else None,
            "api_key": key,
            "domain": domain,
            "debug": self.debug,
        }
        self._link: SyncLink | AsyncLink | None = None
        self._client: DriverClient | None = None
        self._started: cf.Future | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._loads = 0
        self._output = Output()

    @property
    def sandbox_id(self) -> str | None:
        """The E2B sandbox id once started ("debug_sandbox_id" in debug mode)."""
        return None if self._link is None else self._link.sandbox_id

    def _new_link(self, cls: type[SyncLink] | type[AsyncLink]) -> SyncLink | AsyncLink:
        self._check_open()
        link = cls(
            self._create, lifetime=self.sandbox_timeout, send_timeout=self.send_timeout,
            chunk=self.send_chunk_bytes, on_stdout=self._on_stdout, on_stderr=self._output.stderr,
            on_broken=self._on_broken,
        )  # fmt: skip
        self._client = DriverClient(link.write, on_fatal=link.kill_soon, max_line_bytes=self.max_line_bytes)
        self._link = link
        self._track()
        return link

    def _claim_start(self) -> cf.Future | None:
        """The start in progress to wait for, or None when this caller is to start the sandbox."""
        with self._start_lock:
            if self._closed:
                raise SandboxClosedError("this sandbox was closed; create a new one")
            if self._started is not None:
                return self._started
            self._started = cf.Future()
            return None

    def start(self) -> None:
        pending = self._claim_start()
        if pending is not None:
            pending.result()
            return
        try:
            link = self._new_link(SyncLink)
            try:
                link.open()
            except Exception as exc:
                raise SandboxStartError(create_error(exc, self.template)) from exc
            self._check_open()
            if self.upload_driver:
                link.upload(self.driver_path, _driver_source(), False)
            link.run(self._command())
            assert self._client is not None
            self._check_ready(self._client.call(self._hello(), timeout=START_TIMEOUT))
        except BaseException as exc:
            self.close()
            raise self._start_error(exc)
        self._started.set_result(None)  # type: ignore[union-attr]

    async def astart(self) -> None:
        pending = self._claim_start()
        if pending is not None:
            await asyncio.wrap_future(pending)
            return
        try:
            link = self._new_link(AsyncLink)
            try:
                await link.open()
            except Exception as exc:
                raise SandboxStartError(create_error(exc, self.template)) from exc
            self._check_open()
            if self.upload_driver:
                await link.aupload(self.driver_path, _driver_source(), False)
            await link.run(self._command())
            assert self._client is not None
            self._check_ready(await self._client.acall(self._hello(), timeout=START_TIMEOUT))
        except BaseException as exc:
            await self.aclose()
            raise self._start_error(exc)
        self._started.set_result(None)  # type: ignore[union-attr]

    def _check_open(self) -> None:
        if self._closed:  # close() ran while the sandbox was being created: it is killed on the way out
            raise SandboxClosedError("this sandbox was closed while it started")

    def _start_error(self, exc: BaseException) -> BaseException:
        """What start() raises (and what a concurrent start() waiting on it gets)."""
        if isinstance(exc, Exception) and not isinstance(exc, (SandboxStartError, SandboxClosedError)):
            baked = None if self.upload_driver else (self.driver_path, self.template)
            exc = start_error(exc, self._output.hint(), baked)
        self._started.set_exception(exc)  # type: ignore[union-attr]
        return exc

    def _command(self) -> str:
        return f"exec {self.python} {shlex.quote(self.driver_path)}"

    def _hello(self) -> dict[str, Any]:
        return {"type": "hello", "max_output_chars": self.max_output_chars, "final_fields": self.final_fields}

    def _check_ready(self, reply: dict[str, Any]) -> None:
        if reply.get("version") != _driver.PROTOCOL_VERSION:
            raise SandboxStartError(version_error(self.driver_path, reply.get("version"), _driver.PROTOCOL_VERSION))

    def _on_stdout(self, text: str) -> None:
        data = self._output.stdout(text.encode("utf-8", "surrogateescape"))
        if data and self._client is not None:
            self._client.feed(data)

    def _on_broken(self, message: str) -> None:
        if not self._closed and self._client is not None:
            self._client.fail(SandboxTerminatedError(message + self._output.hint()))

    def _ready(self) -> DriverClient:
        if self._closed:
            raise SandboxClosedError("this sandbox was closed; create a new one")
        if self._started is None or not self._started.done():
            self.start()
        assert self._client is not None and self._link is not None
        self._link.check_sync()
        if self._client.dead is not None:
            self._link.kill_wait()
            raise self._client.dead
        return self._client

    async def _aready(self) -> DriverClient:
        if self._closed:
            raise SandboxClosedError("this sandbox was closed; create a new one")
        if self._started is None or not self._started.done():
            await self.astart()
        assert self._client is not None and self._link is not None
        if self._client.dead is not None:
            await self._link.akill_wait()
            raise self._client.dead
        return self._client

    def _load_message(self, name: str, fmt: Format) -> dict[str, Any]:
        self._loads += 1
        return {"type": "load", "name": name, "format": fmt, "path": f"{self.session_dir}/ctx-{self._loads}-{name}"}

    @contextlib.contextmanager
    def _uploading(self, name: str, value: Any, fmt: Format) -> Iterator[Any]:
        """The upload body of `value`, closed afterwards; SDK errors become a SandboxError naming the value."""
        body = open_source(value, fmt)
        try:
            yield body
        except SandboxError:
            raise
        except Exception as exc:
            raise SandboxError(f"uploading {name!r} into the E2B sandbox failed: {type(exc).__name__}: {exc}") from exc
        finally:
            getattr(body, "close", lambda: None)()

    def load(self, name: str, value: Any, format: Format | None = None) -> dict[str, Any]:
        client = self._ready()
        fmt, inline = plan_load(name, value, format)
        if inline is not None:
            return self._guard(client.call, inline, 60)["info"]
        msg, link = self._load_message(name, fmt), self._link
        assert link is not None
        with self._uploading(name, value, fmt) as body:
            link.extend(0)
            link.upload(msg["path"], body, should_compress(value, self.compress))
        info = self._guard(client.call, msg, 600)["info"]
        link.remove(msg["path"])  # the driver holds the value now; the VM's disk need not
        return info

    async def aload(self, name: str, value: Any, format: Format | None = None) -> dict[str, Any]:
        client = await self._aready()
        fmt, inline = plan_load(name, value, format)
        if inline is not None:
            return (await self._aguard(client.acall(inline, 60)))["info"]
        msg, link = self._load_message(name, fmt), self._link
        assert link is not None
        with self._uploading(name, value, fmt) as body:
            await link.aextend(0)
            await link.aupload(msg["path"], body, should_compress(value, self.compress))
        info = (await self._aguard(client.acall(msg, 600)))["info"]
        await link.aremove(msg["path"])
        return info

    def execute(self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None) -> ExecResult:
        client = self._ready()
        with self._one_execution():
            limit = timeout or self.timeout
            assert self._link is not None
            self._link.extend(limit + self.grace)
            return self._guard(client.execute, code, tools or {}, limit, self.grace)

    async def aexecute(
        self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None
    ) -> ExecResult:
        client = await self._aready()
        with self._one_execution():
            limit = timeout or self.timeout
            assert self._link is not None
            await self._link.aextend(limit + self.grace)
            return await self._aguard(client.aexecute(code, tools or {}, limit, self.grace))

    def _guard(self, fn: Any, *args: Any) -> Any:
        """Run a protocol call; when it fails because the channel died, raise only once the sandbox is gone (the
        client wakes its waiters before it asks for the kill, so the kill is joined here, not just awaited)."""
        try:
            return fn(*args)
        except SandboxError:
            if self._link is not None and self._client is not None and self._client.dead is not None:
                self._link.kill_wait()
            raise

    async def _aguard(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except SandboxError:
            if self._link is not None and self._client is not None and self._client.dead is not None:
                await self._link.akill_wait()
            raise

    def cancel(self) -> None:
        if self._client is not None and not self._closed:
            self._client.cancel(self.grace)

    def _release(self) -> None:
        if self._client is not None:
            self._client.fail(SandboxClosedError("this sandbox was closed; create a new one"))
            self._client.shutdown()
        self._untrack()

    def close(self) -> None:
        """Kill the driver and the E2B sandbox and wait for it (bounded); safe to call again."""
        with self._start_lock:
            self._closed = True
        if self._link is not None:
            self._link.kill_wait()
        self._release()

    async def aclose(self) -> None:
        with self._start_lock:
            self._closed = True
        if self._link is not None:
            await self._link.akill_wait()
        self._release()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and getattr(self, "_link", None) is not None:
            try:
                self._link.kill_soon()
            except Exception:  # e.g. no new threads at interpreter shutdown; the exit hook has run by then
                pass


def _driver_source() -> bytes:
    return pathlib.Path(_driver.__file__).read_bytes()
