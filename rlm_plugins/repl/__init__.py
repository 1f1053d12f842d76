"""Host side of the sandboxes that run REPL code, and the driver that runs inside them."""

from rlm_plugins.repl.base import BaseSandbox, ExecError, ExecResult, FinalAnswer, Sandbox, ToolCallRecord
from rlm_plugins.repl.factory import create_sandbox, sandbox_class, sandbox_factory
from rlm_plugins.repl.inprocess import InProcessSandbox
from rlm_plugins.repl.isolation import Limits
from rlm_plugins.repl.local import LocalSandbox

__all__ = [
    "BaseSandbox",
    "ExecError",
    "ExecResult",
    "FinalAnswer",
    "InProcessSandbox",
    "Limits",
    "LocalSandbox",
    "Sandbox",
    "ToolCallRecord",
    "create_sandbox",
    "sandbox_class",
    "sandbox_factory",
]
