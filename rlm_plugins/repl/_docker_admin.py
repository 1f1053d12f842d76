"""Housekeeping for the docker sandbox: remove leftover containers, build the sandbox image."""

from __future__ import annotations

import os
import pathlib
import shutil
import socket
import subprocess
import tempfile

from rlm_plugins.errors import ConfigurationError, SandboxError
from rlm_plugins.repl import driver as _driver
from rlm_plugins.repl._docker_engine import LABEL, OWNER_LABEL, Engine
from rlm_plugins.repl._docker_files import orphaned_staging

CHECKOUT_DOCKERFILE = pathlib.Path(__file__).resolve().parents[2] / "sandbox" / "Dockerfile"
"""sandbox/Dockerfile of a source checkout (an installed wheel has none: pass `dockerfile=`)."""
DRIVER_IN_CONTEXT = "rlm_plugins/repl/driver.py"
"""Where the build context holds the driver, as sandbox/Dockerfile expects it (relative to the repository root)."""
_PS_FORMAT = {  # a container's id and owner label: docker's `ps` has a Label function, podman's a Labels map
    "docker": "{{.ID}} {{.Label " + f'"{OWNER_LABEL}"' + "}}",
    "podman": "{{.ID}} {{index .Labels " + f'"{OWNER_LABEL}"' + "}}",
}


def _orphaned(owner: str) -> bool:
    """Whether the process that created a container is gone (only knowable for containers made on this host)."""
    host, _, pid = owner.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune(engine: str = "docker", everything: bool = False) -> list[str]:
    """Remove sandbox containers whose creating process on this host is gone (all of them with `everything`).

    The staging directories of dead processes go too. Returns the container ids removed.
    """
    for directory in orphaned_staging(_alive):
        shutil.rmtree(directory, ignore_errors=True)
    cli = Engine(engine)
    listing = cli.run(["ps", "--all", "--filter", f"label={LABEL}", "--format", _PS_FORMAT[cli.name]])
    if listing.returncode != 0:
        raise SandboxError(f"`{engine} ps` failed: {listing.stderr.strip()}")
    removed = []
    for line in listing.stdout.splitlines():
        container, _, owner = line.strip().partition(" ")
        if container and (everything or _orphaned(owner)):
            cli.remove(container)
            removed.append(container)
    return removed


def build_image(tag: str, engine: str = "docker", dockerfile: str | os.PathLike[str] | None = None) -> int:
    """Build the sandbox image with the engine (its output goes to this terminal); the engine's exit code.

    The build context holds only the installed driver, at the path sandbox/Dockerfile copies it from.
    """
    path = pathlib.Path(dockerfile) if dockerfile is not None else CHECKOUT_DOCKERFILE
    if not path.is_file():
        msg = f"no Dockerfile at {str(path)!r}: pass --file (a Dockerfile that copies {DRIVER_IN_CONTEXT})"
        raise ConfigurationError(msg)
    cli = Engine(engine)
    with tempfile.TemporaryDirectory(prefix="rlm-image-") as context:
        target = pathlib.Path(context, DRIVER_IN_CONTEXT)
        target.parent.mkdir(parents=True)
        shutil.copyfile(_driver.__file__, target)
        return subprocess.run([cli.binary, "build", "--file", str(path), "--tag", tag, context], check=False).returncode
