"""Fixtures of the DSPy tests: every module test runs through `forward` and through `aforward`."""

from __future__ import annotations

import asyncio

import pytest


@pytest.fixture(params=["sync", "async"])
def call(request):
    """Call a DSPy module synchronously (`module(...)`) or asynchronously (`await module.acall(...)`)."""

    def run(module, **inputs):
        if request.param == "sync":
            return module(**inputs)
        return asyncio.run(module.acall(**inputs))

    run.mode = request.param
    return run
