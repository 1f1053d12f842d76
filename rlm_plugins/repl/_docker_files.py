"""How context files reach a docker sandbox: their bytes, and a host directory shared read-only with the container.

With a local engine, each sandbox gets a private staging directory (on tmpfs when the machine has one) that is
bind-mounted read-only at `STAGE_DIR`; a load writes the value there, the driver reads it, and the host deletes it
at once (an mmap'd value survives the unlink). With a remote engine, values travel as a tar stream instead.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import tempfile
from collections.abc import Callable
from typing import Any, BinaryIO

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.repl._ascii import ascii_view
from rlm_plugins.repl._e2b_upload import iter_chunks
from rlm_plugins.repl.base import Format

STAGE_DIR = "/rlm/in"
"""Where the staging directory appears in the container."""
PATHS_DIR = "/rlm/paths"
"""Where a `pathlib.Path` bind-mounted at creation appears in the container."""
_OTHERS_READ = 0o004


def payload(value: Any, fmt: Format) -> tuple[int, list[Any]]:
    """The bytes of `value` for the driver's `read_value(path, fmt)` and their size; an ASCII str is not copied.

    The caller must keep `value` alive while it uses the parts (they may be views of its memory).
    """
    if fmt == "text" and isinstance(value, str):
        view = ascii_view(value)
        if view is not None:
            return len(view), [view]
    if fmt in ("bytes", "mmap") and isinstance(value, (bytes, bytearray, memoryview)):
        view = memoryview(value).cast("B")
        return len(view), [view]
    parts = list(iter_chunks(value, fmt))
    return sum(len(p) for p in parts), parts


def path_size(path: pathlib.Path) -> int:
    """The size of a context file, or a ConfigurationError naming it."""
    try:
        return path.stat().st_size
    except OSError as exc:
        raise ConfigurationError(f"cannot read the context file {str(path)!r}: {exc.strerror}") from exc


def open_context(path: pathlib.Path) -> BinaryIO:
    """The context file opened for reading, or a ConfigurationError naming it."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise ConfigurationError(f"cannot read the context file {str(path)!r}: {exc.strerror}") from exc


def readable_in_place(path: pathlib.Path) -> bool:
    """Whether the container's unprivileged user can read the file through a bind mount (others may read it)."""
    return path.is_file() and bool(path.stat().st_mode & _OTHERS_READ)


STAGING_PREFIX = "rlm-docker-"


def _parent() -> str:
    """tmpfs when the machine has one (writing there costs a third of disk), else the temp dir."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def orphaned_staging(alive: Callable[[int], bool]) -> list[str]:
    """Staging directories whose process is gone (it was killed before it could delete them)."""
    found = []
    for entry in os.scandir(_parent()):
        pid = entry.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if entry.name.startswith(STAGING_PREFIX) and pid.isdigit() and not alive(int(pid)):
            found.append(entry.path)
    return found


class Staging:
    """A private host directory the container sees read-only at `STAGE_DIR`.

    Only its owner may list it (mode 0711); files get unguessable names and live only until the driver read them.
    """

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-", dir=_parent())
        os.chmod(self.directory, 0o711)

    def mount(self) -> tuple[str, str]:
        return self.directory, STAGE_DIR

    def put(self, value: Any, fmt: Format) -> tuple[str, str]:
        """Write `value` as a new read-only file; (its host path, its path in the container)."""
        name = secrets.token_hex(8)
        host = os.path.join(self.directory, name)
        fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(value, pathlib.Path):
                    with open_context(value) as source:
                        shutil.copyfileobj(source, out, 1024 * 1024)
                else:
                    for part in payload(value, fmt)[1]:
                        out.write(part)
        except BaseException:
            self.remove(host)
            raise
        os.chmod(host, 0o444)  # the umask may have narrowed it
        return host, f"{STAGE_DIR}/{name}"

    @staticmethod
    def remove(host: str) -> None:
        try:
            os.unlink(host)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
