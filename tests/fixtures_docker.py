"""Fixtures for the docker sandbox: one daemon and one scratch image per session (`tests/fakes/docker_engine.py`).

Tests that ask for `docker_engine` skip, with the reason, when no Docker engine can run on this machine.
"""

from __future__ import annotations

import os
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rlm_plugins.repl import create_sandbox
from rlm_plugins.repl.base import BaseSandbox
from tests.fakes import docker_engine as engines


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[types.SimpleNamespace]:
    """`host` (DOCKER_HOST for the session), `options` for `create_sandbox("docker", ...)`, `leftovers()`."""
    try:
        host = engines.ensure_daemon()
        options = engines.sandbox_options(host)
    except engines.EngineUnavailable as exc:
        pytest.skip(f"the docker sandbox needs a Docker engine: {exc}")
    saved = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = host
    yield types.SimpleNamespace(
        host=host, options=options, leftovers=lambda mine=True: engines.leftover_containers(host, mine)
    )
    if saved is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = saved


@pytest.fixture(scope="session")
def podman_options() -> dict[str, Any]:
    """`create_sandbox("docker", ...)` options for rootful podman and the scratch image; skips without podman."""
    try:
        return engines.podman_options()
    except engines.EngineUnavailable as exc:
        pytest.skip(f"the docker sandbox on podman needs podman: {exc}")


def gone(container: str | None, engine: types.SimpleNamespace, within: float = 10.0) -> bool:
    """Whether `container` no longer exists, polling for up to `within` seconds (the engine removes asynchronously)."""
    deadline = time.monotonic() + within
    while container is not None and any(container.startswith(c) for c in engine.leftovers(mine=False)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def make_docker(docker_engine: types.SimpleNamespace) -> Iterator[Callable[..., BaseSandbox]]:
    """`make_docker(**options)`: a new, unstarted docker sandbox; at teardown each is closed and its container gone."""
    made: list[Any] = []

    def build(**options: Any) -> BaseSandbox:
        made.append(create_sandbox("docker", **{**docker_engine.options, **options}))
        return made[-1]

    yield build
    for sandbox in made:
        sandbox.close()
    for sandbox in made:
        assert gone(sandbox.container_id, docker_engine), f"container {sandbox.container_id} outlived close()"
