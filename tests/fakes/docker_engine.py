"""Container engines for tests and benchmarks on a machine without Docker Hub: a private daemon and a scratch image.

`ensure_daemon()` finds a working daemon (`DOCKER_HOST`, the system one) or starts Debian's `dockerd` on a private
socket under /tmp (no bridge, no iptables: sandboxes run with `--network none`); the daemon stays up for the next
run. `scratch_image()` imports an image holding only empty directories and symlinks; `runtime_mounts()` are this
machine's Python runtime and libraries, bind-mounted read-only (the same directories bubblewrap mounts for the
local sandbox), and `PYTHON` the interpreter the container runs; `podman_options()` is the same for rootful
podman, which needs no daemon. Both are guarded by a lock file, so concurrent
test runs share one daemon and one image.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STATE = Path("/tmp/rlm-dockerd")
SOCKET = f"unix://{STATE}/docker.sock"
SYSTEM_SOCKET = "unix:///var/run/docker.sock"
PYTHON = os.path.realpath(sys.executable)
"""The interpreter in the container: the real binary behind this one (the driver needs only the stdlib)."""


class EngineUnavailable(Exception):
    """Docker cannot run here; the message says why (tests skip with it)."""


def runtime_mounts() -> list[tuple[str, str]]:
    """(host, container) read-only mounts that let the scratch image run this machine's Python."""
    paths = [p for p in ("/usr", "/etc/ld.so.cache", "/etc/localtime", "/etc/alternatives") if os.path.exists(p)]
    roots = {os.path.realpath(r) for r in (sys.base_prefix, sys.base_exec_prefix, str(Path(PYTHON).parent.parent))}
    paths += [r for r in sorted(roots) if r != "/usr" and not r.startswith("/usr/")]
    return [(p, p) for p in paths]


@contextmanager
def _locked() -> Iterator[None]:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _works(host: str | None) -> bool:
    env = {**os.environ, "DOCKER_HOST": host} if host else dict(os.environ)
    try:
        done = subprocess.run(["docker", "version"], capture_output=True, env=env, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def ensure_daemon() -> str:
    """A DOCKER_HOST value that reaches a working daemon, starting the private one when needed."""
    if shutil.which("docker") is None:
        raise EngineUnavailable("the docker command is not installed (apt-get install docker.io)")
    if os.environ.get("DOCKER_HOST") and _works(None):
        return os.environ["DOCKER_HOST"]
    if os.path.exists(SYSTEM_SOCKET[len("unix://") :]) and _works(SYSTEM_SOCKET):
        return SYSTEM_SOCKET
    if _works(SOCKET):
        return SOCKET
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineUnavailable("no Docker daemon answers and dockerd is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        raise EngineUnavailable("no Docker daemon answers, and starting dockerd needs root")
    with _locked():
        if _works(SOCKET):
            return SOCKET
        log = open(STATE / "dockerd.log", "ab")  # noqa: SIM115 - the daemon keeps it
        subprocess.Popen(
            [
                dockerd, "--host", SOCKET, "--data-root", str(STATE / "data"), "--exec-root", str(STATE / "exec"),
                "--pidfile", str(STATE / "dockerd.pid"), "--iptables=false", "--ip6tables=false", "--bridge=none",
            ],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not _works(SOCKET):
            if time.monotonic() > deadline:
                tail = (STATE / "dockerd.log").read_text(errors="replace")[-800:]
                raise EngineUnavailable(f"dockerd did not come up within 60 s: {tail}")
            time.sleep(0.3)
    return SOCKET


def _tarball(mounts: list[tuple[str, str]]) -> bytes:
    """Empty directories for every mount point, and the root symlinks (/bin -> usr/bin) this machine has."""
    dirs = {"tmp", "etc", "usr"}
    for _, target in mounts:
        parent = Path(target.lstrip("/"))
        dirs.update(str(p) for p in [parent, *parent.parents] if str(p) != ".")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in ("bin", "lib", "lib64", "lib32", "sbin"):
            if os.path.islink(f"/{name}"):
                link = tarfile.TarInfo(name)
                link.type, link.linkname = tarfile.SYMTYPE, os.readlink(f"/{name}")
                tar.addfile(link)
        for name in sorted(dirs):
            if os.path.isfile(f"/{name}"):
                entry = tarfile.TarInfo(name)
                tar.addfile(entry, io.BytesIO(b""))
                continue
            entry = tarfile.TarInfo(name)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(entry)
    return buffer.getvalue()


def scratch_image(host: str | None, engine: str = "docker") -> str:
    """The name of an image holding only mount points; imported once per machine and engine."""
    data = _tarball(runtime_mounts())
    tag = f"rlm-plugins-scratch:{hashlib.sha256(data).hexdigest()[:12]}"
    env = {**os.environ, "DOCKER_HOST": host} if host else dict(os.environ)
    with _locked():
        if subprocess.run([engine, "image", "inspect", tag], capture_output=True, env=env, check=False).returncode:
            done = subprocess.run([engine, "import", "-", tag], input=data, capture_output=True, env=env, check=False)
            if done.returncode != 0:
                raise EngineUnavailable(f"{engine} import failed: {done.stderr.decode(errors='replace')}")
    return tag if engine == "docker" else f"localhost/{tag}"


def sandbox_options(host: str | None, engine: str = "docker") -> dict[str, object]:
    """The `create_sandbox("docker", ...)` options that run this machine's Python in the scratch image."""
    return {"image": scratch_image(host, engine), "python": PYTHON, "mounts": runtime_mounts(), "engine": engine}


def podman_options() -> dict[str, object]:
    """`sandbox_options` for rootful podman, which needs no daemon."""
    if shutil.which("podman") is None:
        raise EngineUnavailable("the podman command is not installed (apt-get install podman)")
    try:
        done = subprocess.run(["podman", "info"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineUnavailable(f"podman info failed: {exc}") from exc
    if done.returncode != 0:
        raise EngineUnavailable(f"podman does not work here: {done.stderr.decode(errors='replace')[-300:]}")
    return sandbox_options(None, "podman")


def leftover_containers(host: str, mine: bool = True) -> list[str]:
    """Ids of the sandbox containers that exist right now (only those this process made, unless `mine` is False)."""
    env = {**os.environ, "DOCKER_HOST": host}
    owner = f"label=rlm-plugins.owner={socket.gethostname()}:{os.getpid()}"
    done = subprocess.run(
        ["docker", "ps", "--all", "--quiet", "--filter", "label=rlm-plugins.sandbox", *(["--filter", owner] * mine)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return done.stdout.split()
