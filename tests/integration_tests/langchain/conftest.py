"""ChatRLM integration tests: cassettes live in `cassettes/langchain/`, and the network is blocked (Unix sockets
stay open for the local sandbox). Cassette tests manage the network themselves: open to the scripted server on
loopback while recording, blocked while replaying."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket

from tests.fixtures_vcr import CASSETTES
from tests.unit_tests.langchain.conftest import invoke_both

__all__ = ["invoke_both"]


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(CASSETTES / "langchain")


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest) -> Iterator[None]:
    if "vcr" in request.fixturenames:
        yield
        return
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
