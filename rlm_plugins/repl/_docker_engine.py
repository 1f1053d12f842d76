"""The container engine's command line (docker or podman): a sandbox container's flags, copying in, removal.

Everything goes through the engine's own CLI, so whatever reaches it (`DOCKER_HOST`, contexts, rootful podman)
works the same here. Files travel into a container as a tar stream on `cp -`'s stdin, so a remote engine works too.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO

from rlm_plugins.errors import ConfigurationError, SandboxError, SandboxStartError

LABEL = "rlm-plugins.sandbox"
"""Every sandbox container carries this label; `rlm-plugins sandbox prune` finds leftovers by it."""
OWNER_LABEL = "rlm-plugins.owner"
"""`host:pid` of the process that created the container."""
SANDBOX_USER = "65534:65534"
DRIVER_DIR = "/rlm/bin"
WORK_DIR = "/rlm/work"
ENGINES = ("docker", "podman")
OPEN_FILES = 1024
"""Open files per container process, as the local sandbox allows."""
PODMAN_NPROC = 4096
_SIZE = re.compile(r"^(\d+)([kmg]?)b?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(value: int | str | None, option: str) -> int | None:
    """Bytes of a size given as an int or as "512m", "2g"; None stays None."""
    if value is None or isinstance(value, int):
        if isinstance(value, int) and value <= 0:
            raise ConfigurationError(f"{option}={value!r} must be positive (bytes, or a string such as '2g')")
        return value
    match = _SIZE.match(str(value).strip())
    if not match:
        raise ConfigurationError(f"{option}={value!r} is not a size; pass bytes or a string such as '512m' or '2g'")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


@dataclass(frozen=True)
class Resources:
    """What one sandbox container may use; None lifts a limit (work_size is always capped)."""

    memory: int | None
    cpus: float | None
    pids: int | None
    work_size: int
    network: bool


class Engine:
    """One container engine's CLI."""

    def __init__(self, name: str = "docker") -> None:
        if name not in ENGINES:
            raise ConfigurationError(f"engine={name!r} is not one of {', '.join(repr(e) for e in ENGINES)}")
        binary = shutil.which(name)
        if binary is None:
            hint = "apt-get install docker.io" if name == "docker" else "apt-get install podman"
            raise SandboxStartError(f"the {name} command is not installed ({hint}), or pass engine='...' to pick one")
        self.name = name
        self.binary = binary

    @property
    def local(self) -> bool:
        """Whether the engine runs on this machine, so host paths can be bind-mounted."""
        host = os.environ.get("DOCKER_HOST" if self.name == "docker" else "CONTAINER_HOST", "")
        if host:
            return host.startswith("unix://")
        if self.name == "podman":
            return not os.environ.get("CONTAINER_CONNECTION")
        return os.environ.get("DOCKER_CONTEXT", _current_context()) in ("", "default")

    def run(self, args: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [self.binary, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"`{self.name} {args[0]}` did not finish within {timeout:.0f}s") from exc

    def check(self, args: Sequence[str], timeout: float = 120) -> str:
        """Run a command that must succeed; its stdout."""
        done = self.run(args, timeout)
        if done.returncode != 0:
            raise SandboxStartError(f"`{self.name} {args[0]}` failed: {done.stderr.strip()}{self._hint(done.stderr)}")
        return done.stdout

    def _hint(self, stderr: str) -> str:
        if any(s in stderr for s in ("Unable to find image", "No such image", "image not known", "pull access denied")):
            return "; build the image with `rlm-plugins sandbox build-image`, or pass image='...' with Python >= 3.9"
        if "Cannot connect" in stderr or "connection refused" in stderr.lower():
            return f"; start the {self.name} daemon, or point DOCKER_HOST at one"
        return ""

    def remove(self, container: str, within: float = 30.0) -> None:
        """Force-remove a container and its anonymous volumes, and wait until it is gone; gone already is fine."""
        deadline = time.monotonic() + within
        try:
            now = ["--time", "0"] if self.name == "podman" else []  # podman's rm waits 10 s for a SIGTERM first
            done = self.run(["rm", "--force", "--volumes", *now, container], timeout=within)
            if "already in progress" in done.stderr:  # its own `--rm` got there first
                while self.exists(container) and time.monotonic() < deadline:
                    time.sleep(0.05)
        except SandboxError:
            pass

    def exists(self, container: str) -> bool:
        return self.run(["container", "inspect", "--format", "{{.Id}}", container], timeout=30).returncode == 0

    def copy_in(
        self, container: str, directory: str, name: str, size: int, chunks: Iterable[bytes | memoryview]
    ) -> None:
        """Stream one file into `directory` of the container as a tar archive on `cp -`'s stdin."""
        proc = subprocess.Popen(
            [self.binary, "cp", "-", f"{container}:{directory}"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stderr is not None
        try:
            with contextlib.suppress(BrokenPipeError), proc.stdin:  # a broken pipe: cp failed, its stderr says why
                write_tar(proc.stdin, name, size, chunks)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        err = proc.stderr.read().decode("utf-8", "replace").strip()
        proc.stderr.close()
        if proc.wait() != 0:
            hint = "; raise work_size=" if "no space left" in err else ""
            raise SandboxError(f"copying {name!r} into the container failed: {err or 'no reason given'}{hint}")

    def sandbox_labels(self) -> list[str]:
        return ["--label", f"{LABEL}=1", "--label", f"{OWNER_LABEL}={socket.gethostname()}:{os.getpid()}"]

    def work_mount(self, size: int) -> list[str]:
        """The size-capped tmpfs work dir; docker's is a tmpfs volume, so `cp` reaches it in a running container."""
        if self.name == "podman":
            return ["--tmpfs", f"{WORK_DIR}:rw,size={size},mode=1777"]
        opts = ["type=volume", f"dst={WORK_DIR}", "volume-opt=type=tmpfs", "volume-opt=device=tmpfs"]
        return ["--mount", ",".join([*opts, f"volume-opt=o=size={size}"])]


def _current_context() -> str:
    """The docker CLI's current context (`docker context use`), "" when none is set or the config is unreadable."""
    config = pathlib.Path(os.environ.get("DOCKER_CONFIG") or pathlib.Path.home() / ".docker", "config.json")
    try:
        context = json.loads(config.read_text(encoding="utf-8")).get("currentContext")
    except (OSError, ValueError, AttributeError):
        return ""
    return context if isinstance(context, str) else ""


def create_args(
    engine: Engine,
    *,
    name: str,
    image: str,
    python: str,
    resources: Resources,
    mounts: Sequence[tuple[str, str]],
    driver_volume: bool,
) -> list[str]:
    """The `create` command of a sandbox container: no network, read-only root, no capabilities, non-root."""
    args = ["create", "--interactive", "--rm", "--name", name, *engine.sandbox_labels()]
    args += ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", SANDBOX_USER]
    args += ["--workdir", WORK_DIR, *engine.work_mount(resources.work_size)]
    if driver_volume:  # an anonymous volume: `cp` can fill it before the container starts, despite --read-only
        args += ["--volume", DRIVER_DIR]
    for var in ("HOME", "TMPDIR"):
        args += ["--env", f"{var}={WORK_DIR}"]
    args += ["--env", "LANG=C.UTF-8", "--env", "LC_ALL=C.UTF-8"]
    if not resources.network:
        args += ["--network", "none"]
    if resources.memory is not None:
        memory = str(resources.memory)
        args += ["--memory", memory, "--memory-swap", memory, "--ulimit", f"data={memory}"]
    if resources.cpus is not None:
        args += ["--cpus", str(resources.cpus)]
    if resources.pids is not None:
        args += ["--pids-limit", str(resources.pids)]
    args += ["--ulimit", f"nofile={OPEN_FILES}:{OPEN_FILES}"]
    if engine.name == "podman":  # podman's default nproc rlimit is one a host without CAP_SYS_RESOURCE cannot grant
        nproc = resources.pids or PODMAN_NPROC
        args += ["--ulimit", f"nproc={nproc}:{nproc}"]
    for source, target in mounts:
        args += ["--mount", f"type=bind,source={source},target={target},readonly"]
    return [*args, image, python, "-I", "-X", "utf8", "-u", f"{DRIVER_DIR}/driver.py"]


def write_tar(out: IO[bytes], name: str, size: int, chunks: Iterable[bytes | memoryview]) -> None:
    """A one-file tar archive (read-only to everyone) written as it goes; `chunks` must add up to `size` bytes."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o444, int(time.time())
    out.write(info.tobuf(tarfile.PAX_FORMAT))
    written = 0
    for chunk in chunks:
        out.write(chunk)
        written += len(chunk)
    if written != size:
        raise SandboxError(f"{name!r} changed size while it was copied ({size} bytes expected, {written} read)")
    out.write(b"\0" * (-size % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE))
