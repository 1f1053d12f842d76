"""The DSPy integration tests share the unit tests' sync/async `call` fixture."""

from tests.unit_tests.dspy.conftest import call

__all__ = ["call"]
