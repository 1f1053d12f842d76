"""Fixtures of the compatibility tests: the DSPy module tests' `call` (sync and async)."""

from tests.unit_tests.dspy.conftest import call

__all__ = ["call"]
