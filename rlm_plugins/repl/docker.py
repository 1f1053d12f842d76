"""The `docker` sandbox: the driver in a locked-down container (Docker or Podman), over `start --attach --interactive`.

The container is created with no network, a read-only root filesystem, a size-capped tmpfs work dir, no
capabilities, no new privileges, a non-root user and memory / pid / cpu limits. The same `driver.py` every backend
runs is mounted (local engine) or copied in before the container starts, so any image with Python >= 3.9 works;
protocol lines travel over the container's stdin and stdout through the engine's own CLI (no ports, no broker).
Contexts go in once: with a local engine through a private staging directory mounted read-only (a `pathlib.Path`
whose load starts the sandbox is bind-mounted itself), with a remote one as a tar stream (`cp`).
The container is removed on close, when it fails, and at exit; if the host dies, the driver sees its stdin close
and the container removes itself. Leftovers carry the `rlm-plugins.sandbox` label (`rlm-plugins sandbox prune`).
"""

from __future__ import annotations

import itertools
import os
import pathlib
import secrets
import signal
import subprocess
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from rlm_plugins._threads import in_thread
from rlm_plugins.errors import (
    ConfigurationError,
    SandboxClosedError,
    SandboxError,
    SandboxStartError,
    SandboxTerminatedError,
)
from rlm_plugins.repl import driver as _driver
from rlm_plugins.repl._client import DEFAULT_MAX_LINE_BYTES, DriverClient
from rlm_plugins.repl._docker_engine import (
    DRIVER_DIR,
    WORK_DIR,
    Engine,
    Resources,
    create_args,
    parse_size,
)
from rlm_plugins.repl._docker_files import PATHS_DIR, Staging, open_context, path_size, payload, readable_in_place
from rlm_plugins.repl._pipes import PipeChannel
from rlm_plugins.repl.base import BaseSandbox, ExecResult, Format, IsolationLevel, Tool, plan_load

DEFAULT_IMAGE = "rlm-plugins-sandbox"
"""The tag `rlm-plugins sandbox build-image` gives the image built from sandbox/Dockerfile."""
_READ_SIZE = 1024 * 1024
CREATE_TIMEOUT = 600.0
"""Seconds `create` may take: it pulls the image first when the engine does not have it."""


class DockerSandbox(BaseSandbox):
    """Runs REPL code in a container of a local or remote Docker (or Podman) engine.

    Args:
        image: Any image with Python >= 3.9 on `python`; the driver is copied in at start.
        engine: "docker" or "podman"; the command of that name talks to the engine (DOCKER_HOST etc. apply).
        python: The interpreter command inside the image.
        memory: Memory cap of the container (bytes or "2g"); also the heap rlimit, so a huge allocation is a
            MemoryError in user code rather than the end of the container. None lifts it.
        cpus: CPUs the container may use (e.g. 1.5); None lifts the cap.
        pids: Processes and threads the container may have (caps fork bombs); None lifts the cap.
        work_size: Size cap of the tmpfs work dir, which also holds contexts copied in.
        network: Give the container the engine's default network; False (the default) gives it none.
        mounts: Extra read-only bind mounts, as (host path, container path) pairs (local engines only).
        host_files: Share files with the container through read-only bind mounts (the driver, a staging directory
            for contexts, a `pathlib.Path` whose load starts the sandbox) rather than copying them in with `cp`;
            None (the default) does so when the engine is local (DOCKER_HOST unset or a unix socket).
        start_timeout: Seconds to wait for the driver's first answer.
        max_line_bytes: The largest protocol message accepted from the sandbox.
        **options: `timeout`, `max_output_chars`, `grace`, `final_fields` (see `BaseSandbox`).

    Examples:
        >>> with DockerSandbox(image="python:3.12-slim") as sb:  # doctest: +SKIP
        ...     sb.load("context", "hello world")
        ...     sb.execute("len(context)").stdout
        '11\\n'
    """

    kind = "docker"

    def __init__(
        self,
        *,
        image: str = DEFAULT_IMAGE,
        engine: str = "docker",
        python: str = "python3",
        memory: int | str | None = "2g",
        cpus: float | None = None,
        pids: int | None = 256,
        work_size: int | str = "1g",
        network: bool = False,
        mounts: Iterable[tuple[str | os.PathLike[str], str]] = (),
        host_files: bool | None = None,
        start_timeout: float = 60.0,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if cpus is not None and cpus <= 0:
            raise ConfigurationError(f"cpus={cpus!r} must be positive, or None for no cap")
        if pids is not None and pids <= 0:
            raise ConfigurationError(f"pids={pids!r} must be positive, or None for no cap")
        work = parse_size(work_size, "work_size") or 0
        self.resources = Resources(parse_size(memory, "memory"), cpus, pids, work, network)
        self.engine = Engine(engine)
        self.image = image
        self.python = python
        self.mounts = [(os.path.abspath(source), target) for source, target in mounts]
        self.host_files = self.engine.local if host_files is None else host_files
        self.start_timeout = start_timeout
        self.max_line_bytes = max_line_bytes
        self.isolation: IsolationLevel = "container"
        self.name = f"rlm-{secrets.token_hex(6)}"
        self.container_id: str | None = None
        self._pipes: PipeChannel | None = None
        self._client: DriverClient | None = None
        self._started = False
        self._loads = itertools.count(1)
        self._start_lock = threading.Lock()
        self._removal: threading.Thread | None = None
        self._removal_lock = threading.Lock()
        self._staging: Staging | None = None
        self._closed = False

    def start(self) -> None:
        self._spawn(())

    def _spawn(self, mounts: Iterable[tuple[str, str]]) -> bool:
        """Create the container with `mounts`, start it and wait for the driver; False when that happened already.

        A sandbox that fails to start is closed, and nothing of it is left behind.
        """
        with self._start_lock:
            if self._closed:
                raise SandboxClosedError("this sandbox was closed; create a new one")
            if self._pipes is not None:
                return False
            self._track()
            try:
                mounts = [*self.mounts, *mounts]
                driver = pathlib.Path(_driver.__file__)
                mount_driver = self.host_files and readable_in_place(driver)
                if mount_driver:
                    mounts.append((str(driver), f"{DRIVER_DIR}/driver.py"))
                if self.host_files:
                    self._staging = Staging()
                    mounts.append(self._staging.mount())
                args = create_args(
                    self.engine, name=self.name, image=self.image, python=self.python, resources=self.resources,
                    mounts=mounts, driver_volume=not mount_driver,
                )  # fmt: skip
                self.container_id = self.name  # what to remove should `create` fail half-way (it may pull first)
                self.container_id = self.engine.check(args, timeout=CREATE_TIMEOUT).strip() or self.name
                if not mount_driver:
                    source = driver.read_bytes()
                    self.engine.copy_in(self.container_id, DRIVER_DIR, "driver.py", len(source), [source])
                self._attach()
            except BaseException as exc:
                self._closed = True
                self._release()
                if isinstance(exc, SandboxStartError) or not isinstance(exc, (SandboxError, OSError)):
                    raise
                raise SandboxStartError(f"the {self.engine.name} sandbox did not start: {exc}") from exc
            self._started = True
            return True

    def _attach(self) -> None:
        """Start the container attached: its stdin and stdout are the protocol channel."""
        assert self.container_id is not None
        proc = subprocess.Popen(
            [self.engine.binary, "start", "--attach", "--interactive", self.container_id],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, bufsize=0,
        )  # fmt: skip
        self._pipes = PipeChannel(proc, self._exited, "rlm-docker")
        self._client = DriverClient(self._pipes.write, on_fatal=self._kill, max_line_bytes=self.max_line_bytes)
        self._pipes.serve(self._client)
        hello = {"type": "hello", "max_output_chars": self.max_output_chars, "final_fields": self.final_fields}
        reply = self._client.call(hello, timeout=self.start_timeout)
        if reply.get("version") != _driver.PROTOCOL_VERSION:
            raise SandboxStartError(f"the driver in the container speaks protocol {reply.get('version')!r}")

    def _exited(self, code: int) -> None:
        """The attached CLI ended: the container stopped (or was removed)."""
        if not self._closed and self._client is not None:
            self._client.fail(SandboxTerminatedError(self._death_message(code)))

    def _death_message(self, code: int) -> str:
        if code < 0:
            how = f"was killed by signal {-code}"
        elif code == 137:
            how = "was killed (exit code 137: out of memory, or killed from outside)"
        else:
            how = f"exited with code {code}"
        return f"the sandbox container {how}; its REPL state is lost{self._hint()}"

    def _hint(self) -> str:
        return "" if self._pipes is None else self._pipes.hint()

    def _ready(self) -> DriverClient:
        if self._closed:
            raise SandboxClosedError("this sandbox was closed; create a new one")
        if not self._started:
            self.start()
        assert self._client is not None
        if self._client.dead is not None:
            self._join_removal()
            raise self._client.dead
        return self._client

    def load(self, name: str, value: Any, format: Format | None = None) -> dict[str, Any]:
        fmt, inline = plan_load(name, value, format)
        if inline is not None:
            return self._ready().call(inline, timeout=60)["info"]
        size = path_size(value) if isinstance(value, pathlib.Path) else None
        label = f"{next(self._loads)}-{name}"
        if isinstance(value, pathlib.Path) and self._pipes is None and self.host_files and readable_in_place(value):
            target = f"{PATHS_DIR}/{label}"
            if self._spawn([(str(value.resolve()), target)]):
                return self._load_file(name, fmt, target)
        self._ready()
        if self._staging is not None:
            host, target = self._staging.put(value, fmt)
            try:
                return self._load_file(name, fmt, target)
            finally:
                self._staging.remove(host)
        target = f"{WORK_DIR}/.rlm-{label}"
        self._copy(target, value, fmt, size)
        return self._load_file(name, fmt, target)

    def _load_file(self, name: str, fmt: Format, path: str) -> dict[str, Any]:
        msg = {"type": "load", "name": name, "format": fmt, "path": path}
        return self._guard(self._ready().call, msg, 600)["info"]

    def _copy(self, path: str, value: Any, fmt: Format, size: int | None) -> None:
        """Stream a value into the running container's work dir (the remote-engine way)."""
        assert self.container_id is not None
        directory, name = path.rsplit("/", 1)
        if isinstance(value, pathlib.Path):
            assert size is not None
            with open_context(value) as source:
                chunks = iter(lambda: source.read(_READ_SIZE), b"")
                self._guard(self.engine.copy_in, self.container_id, directory, name, size, chunks)
            return
        size, parts = payload(value, fmt)
        self._guard(self.engine.copy_in, self.container_id, directory, name, size, parts)

    def execute(self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None) -> ExecResult:
        client = self._ready()
        with self._one_execution():
            return self._guard(client.execute, code, tools or {}, timeout or self.timeout, self.grace)

    def cancel(self) -> None:
        if self._client is not None and not self._closed:
            self._client.cancel(self.grace)

    async def aexecute(
        self, code: str, tools: Mapping[str, Tool] | None = None, timeout: float | None = None
    ) -> ExecResult:
        client = await self._aready()
        with self._one_execution():
            try:
                return await client.aexecute(code, tools or {}, timeout or self.timeout, self.grace)
            except SandboxError:
                if client.dead is not None:
                    await in_thread(self._join_removal)
                raise

    async def _aready(self) -> DriverClient:
        """`_ready` without blocking the event loop on the engine's CLI (start, removal of a dead container)."""
        if not self._closed and not self._started:
            await self.astart()
        if self._client is not None and self._client.dead is not None:
            await in_thread(self._join_removal)
        return self._ready()

    def _guard(self, fn: Any, *args: Any) -> Any:
        """Run a protocol call; when the channel died, raise only once the container is gone."""
        try:
            return fn(*args)
        except SandboxError:
            if self._client is not None and self._client.dead is not None:
                self._join_removal()
            raise

    def _kill(self) -> None:
        """Remove the container (killing what runs in it), then the attached CLI; on a thread, started once."""
        with self._removal_lock:  # not the start lock: a failed write during start lands here
            if self._removal is None:
                removal = threading.Thread(target=self._remove_container, name="rlm-docker-rm", daemon=True)
                removal.start()
                self._removal = removal

    def _remove_container(self) -> None:
        """`rm --force` first: killing the CLI first would let the driver exit and race `--rm` for the removal."""
        if self.container_id is not None:
            self.engine.remove(self.container_id)
        proc = None if self._pipes is None else self._pipes.proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()

    def _join_removal(self) -> None:
        removal = self._removal
        if removal is not None:
            removal.join(60)

    def close(self) -> None:
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
        self._release()

    def _release(self) -> None:
        """Remove the container and free everything the sandbox holds (once it is marked closed)."""
        self._kill()  # the REPL state is discarded anyway: no graceful shutdown, which would race `--rm`
        self._join_removal()
        if self._pipes is not None:
            self._pipes.close()
            self._pipes.proc.wait()
        if self._client is not None:
            self._client.fail(SandboxClosedError("this sandbox was closed; create a new one"))
            self._client.shutdown()
        if self._staging is not None:
            self._staging.close()
        self._untrack()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True) and getattr(self, "container_id", None) is not None:
            try:
                self._kill()
            except Exception:  # e.g. no new threads at interpreter shutdown; the exit hook has run by then
                pass
