"""Logs of every shape, written once per test session by the real engine and logger."""

from __future__ import annotations

import pytest

from tests.unit_tests.viewer.shapes import SCRIPTS, write_big, write_official, write_shape


@pytest.fixture(scope="session")
def shape_logs(tmp_path_factory):
    """{shape: path} for final, max_iterations, sandbox_error, depth2, official and big."""
    folder = tmp_path_factory.mktemp("viewer-logs")
    logs = {shape: write_shape(shape, folder) for shape in SCRIPTS}
    logs["official"] = write_official(folder)
    logs["big"] = write_big(folder / "big.jsonl")
    return logs
