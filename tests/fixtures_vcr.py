"""vcrpy / pytest-recording configuration: cassettes live in `cassettes/<test module>/` with secrets filtered out.

The scripted server binds a random port on every run, so requests to loopback match whatever their port was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

CASSETTES = Path(__file__).resolve().parents[1] / "cassettes"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
FILTERED_HEADERS = ("authorization", "api-key", "x-api-key")


def port_unless_loopback(r1: Any, r2: Any) -> None:
    """vcrpy matcher: ports must agree, except between two loopback requests (the scripted server's port is random)."""
    if r1.host in LOOPBACK and r2.host in LOOPBACK:
        return
    assert r1.port == r2.port, f"{r1.port} != {r2.port}"


def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    """Register the custom matcher with every VCR that pytest-recording builds."""
    vcr.register_matcher("port_unless_loopback", port_unless_loopback)


@pytest.fixture(scope="module")
def vcr_cassette_dir(request: pytest.FixtureRequest) -> str:
    """Cassettes for `tests/.../test_x.py` live in `cassettes/test_x/` at the repository root."""
    return str(CASSETTES / request.path.stem)


@pytest.fixture
def vcr_config() -> dict[str, Any]:
    """Match on method, URI (port ignored on loopback) and JSON body; never store keys."""
    return {
        "filter_headers": list(FILTERED_HEADERS),
        "match_on": ["method", "scheme", "host", "port_unless_loopback", "path", "query", "body"],
        "decode_compressed_response": True,
    }
