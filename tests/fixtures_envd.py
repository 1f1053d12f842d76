"""Pytest fixtures for the e2b sandbox over the fake envd (`tests/fakes/envd.py`), shared by every module that runs it.

The fake envd is imported only when a test asks for it, so a run without the E2B SDK still collects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from rlm_plugins.repl import create_sandbox

if TYPE_CHECKING:
    from rlm_plugins.repl.e2b import E2BSandbox
    from tests.fakes.envd import FakeEnvd


@pytest.fixture(scope="module")
def envd() -> Iterator[FakeEnvd]:
    """One fake envd per module: the E2B SDK in debug mode talks to its fixed port, which a process-wide lock guards."""
    from tests.fakes.envd import FakeEnvd

    with FakeEnvd() as fake:
        yield fake


def settled(envd: FakeEnvd, wait: float = 5.0) -> int:
    """The processes still running on `envd` once they have had `wait` seconds to end (a kill lands asynchronously)."""
    deadline = time.monotonic() + wait
    while envd.live_processes() and time.monotonic() < deadline:
        time.sleep(0.02)
    return envd.live_processes()


@pytest.fixture
def make_e2b(envd: FakeEnvd, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., E2BSandbox]]:
    """`make_e2b(**options)`: `create_sandbox("e2b", ...)` on the fake envd, not started.

    At teardown every sandbox made is closed and the fake envd must have no process left running.
    """
    monkeypatch.setenv("E2B_DEBUG", "true")
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    envd.input_delay = 0.0
    made: list[Any] = []

    def build(**options: Any) -> E2BSandbox:
        sandbox = create_sandbox("e2b", workdir=envd.workdir, **options)
        made.append(sandbox)
        return sandbox  # type: ignore[return-value]

    yield build
    envd.input_delay = 0.0
    for sandbox in made:
        sandbox.close()
    assert settled(envd) == 0


@pytest.fixture
def e2b_options(envd: FakeEnvd, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """`sandbox_options` that put an integration's `sandbox="e2b"` on the fake envd; no process may outlive the test."""
    monkeypatch.setenv("E2B_DEBUG", "true")
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    yield {"workdir": envd.workdir}
    assert settled(envd) == 0, "an e2b driver process outlived its run"
