"""Fixtures of the compatibility tests: the DSPy module tests' `call` (sync and async); `clients` for `rlms`."""

from tests.compat._rlms_clients import clients
from tests.unit_tests.dspy.conftest import call

__all__ = ["call", "clients"]
