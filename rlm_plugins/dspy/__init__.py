"""DSPy integration: `RLM`, a drop-in for `dspy.RLM` on the rlm-plugins engine, and our sandboxes as DSPy interpreters.

from rlm_plugins.dspy import RLM, interpreter_factory

rlm = RLM("context, query -> answer")                      # our module, our local sandbox
native = dspy.RLM("context, query -> answer", interpreter_factory=interpreter_factory("local"))
"""

from rlm_plugins.dspy.errors import InvalidToolsError, ReservedNameError
from rlm_plugins.dspy.interpreter import InterpreterFactory, SandboxInterpreter, interpreter_factory
from rlm_plugins.dspy.module import RLM
from rlm_plugins.dspy.policy import PredictPolicy
from rlm_plugins.dspy.session import RLMSession
from rlm_plugins.dspy.submodel import LMSubModel

__all__ = [
    "RLM",
    "InterpreterFactory",
    "InvalidToolsError",
    "LMSubModel",
    "PredictPolicy",
    "RLMSession",
    "ReservedNameError",
    "SandboxInterpreter",
    "interpreter_factory",
]
