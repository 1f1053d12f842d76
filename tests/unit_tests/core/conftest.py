"""The `drive` fixture (sync and async runs of one engine) for every core test module."""

from tests.unit_tests.core.test_engine import drive  # noqa: F401
