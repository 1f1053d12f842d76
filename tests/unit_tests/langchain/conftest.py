"""ChatRLM unit tests run with the network blocked (Unix sockets stay open: the local sandbox uses a socketpair).

`invoke_both` runs a test through `invoke` and through `ainvoke`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()


@pytest.fixture(params=["sync", "async"])
def invoke_both(request: pytest.FixtureRequest):
    """`await invoke_both(model, messages)`: `model.invoke` or `await model.ainvoke`, one per parametrization."""

    async def run(model, messages):
        if request.param == "sync":
            return model.invoke(messages)
        return await model.ainvoke(messages)

    return run
