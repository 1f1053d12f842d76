"""Every exception rlm-plugins raises, in one hierarchy.

    RLMError
    ├── ConfigurationError        (also ValueError) a bad argument: the message names the one to change
    │   └── UnknownArgumentError  (also TypeError) an argument the call does not take; names the nearest one
    ├── SandboxError
    │   ├── SandboxStartError     the sandbox could not start
    │   │   └── IsolationUnavailableError   isolation="require" but no isolation level works here
    │   ├── SandboxClosedError    used after close()
    │   ├── SandboxProtocolError  the sandbox sent a malformed or oversize message (it is then stopped)
    │   ├── SandboxTerminatedError the sandbox process died; the REPL state is gone
    │   │   ├── SandboxTimeoutError  code ignored the interrupt and the process had to be killed
    │   │   └── SandboxCancelledError code ignored a cancel and the process had to be killed
    │   └── SandboxUnavailableError a paused run's sandbox cannot be reached from here (local, other process)
    ├── SubModelError             a sub-model call failed (shown to the root model as an error string)
    │   └── SubCallBudgetError    (also RuntimeError) max_llm_calls ran out; raised in the REPL code when the
    │                             engine's on_llm_budget="raise_in_code"
    ├── ModelError                the root model could not be called
    │   ├── ModelRateLimitError   the provider rate-limited the call
    │   ├── ModelAuthenticationError  the provider refused the key
    │   └── ModelTimeoutError     the provider did not answer in time
    ├── McpToolError              an MCP server's tool failed or its server is gone (raised in the REPL code)
    ├── WorkspaceError            (also ValueError) the MCP gateway refused a path, handle, pattern or budget
    ├── RunCancelledError         the run was cancelled before its sandbox started (the run then ends "cancelled")
    └── SessionError
        ├── SessionExpiredError   (also LookupError) the session or paused run is gone: idle, expired, closed
        │                         or already resumed
        ├── SessionBusyError      a session turn was started while another one is running
        └── ContinuationMismatchError  tool results answer a paused run's calls, in another conversation

Errors raised to users end with the fix and do not chain the tracebacks of the libraries underneath: they are
raised `from None`, with the original exception kept on `cause` for debugging.

Errors aimed at the root model (a failed execution, a malformed reply) are not exceptions: they travel as
`[Error] ...` notes formatted by `rlm_plugins.core.feedback`.
"""

from __future__ import annotations


class RLMError(Exception):
    """Base class of every rlm-plugins error; `cause` is the underlying exception, when there was one."""

    cause: BaseException | None = None

    def with_cause(self, cause: BaseException | None) -> RLMError:
        """Keep `cause` on the error without chaining its traceback; returns self, for `raise ... from None`."""
        self.cause = cause
        return self


class ConfigurationError(RLMError, ValueError):
    """An argument or option is invalid; the message says which and what to pass instead."""


class UnknownArgumentError(ConfigurationError, TypeError):
    """A keyword argument the call does not take; the message names the nearest valid one."""


class SandboxError(RLMError):
    """Something went wrong with a sandbox."""


class SandboxStartError(SandboxError):
    """The sandbox could not be started."""


class IsolationUnavailableError(SandboxStartError):
    """`isolation="require"` was asked for but this machine offers no isolation level."""


class SandboxClosedError(SandboxError):
    """The sandbox was used after `close()`."""


class SandboxProtocolError(SandboxError):
    """The sandbox sent a message that breaks the protocol (malformed, oversize, unknown id)."""


class SandboxTerminatedError(SandboxError):
    """The sandbox process ended; its REPL state is lost and a new sandbox is needed."""


class SandboxTimeoutError(SandboxTerminatedError):
    """Code ran past its timeout, ignored the interrupt, and the sandbox was killed."""


class SandboxCancelledError(SandboxTerminatedError):
    """The running code ignored `cancel()` for the grace period, and the sandbox was killed."""


class SandboxUnavailableError(SandboxError):
    """A paused run's sandbox cannot be reached from this process (a local sandbox lives in the one that paused)."""


class SubModelError(RLMError):
    """A sub-model call failed."""


class SubCallBudgetError(SubModelError, RuntimeError):
    """`max_llm_calls` ran out; raised inside the model's code, which may still give its final answer."""


class ModelError(RLMError):
    """The root model could not be called (bad key, unreachable endpoint, bad response).

    When a run was under way, `partial` holds its result so far (steps, usage), so nothing computed is lost.
    """

    partial: object = None


class ModelRateLimitError(ModelError):
    """The provider rate-limited a model call: retry later or lower the concurrency."""


class ModelAuthenticationError(ModelError):
    """The provider refused the key (or the key may not use the model): check the key or the model name."""


class ModelTimeoutError(ModelError, TimeoutError):
    """A model call got no answer in time: retry, or raise the model client's timeout."""


class McpToolError(RLMError):
    """A tool of an MCP server failed, or its server could not be started or reached; the message names it."""


class WorkspaceError(RLMError, ValueError):
    """The MCP gateway refused a request (a path outside the workspace, an unknown handle, a bad pattern)."""


class RunCancelledError(RLMError):
    """The run was cancelled before its sandbox started."""


class SessionError(RLMError):
    """Something went wrong with a session or a paused run."""


class SessionExpiredError(SessionError, LookupError):
    """The session or paused run is gone (idle too long, expired, closed, or already resumed)."""


class SessionBusyError(SessionError):
    """A session runs one turn at a time; a second turn was started while one is running."""


class ContinuationMismatchError(SessionError):
    """Tool results name a paused run's calls, but the conversation before those calls is not the paused one."""


__all__ = [
    "ConfigurationError",
    "ContinuationMismatchError",
    "IsolationUnavailableError",
    "McpToolError",
    "ModelAuthenticationError",
    "ModelError",
    "ModelRateLimitError",
    "ModelTimeoutError",
    "RLMError",
    "RunCancelledError",
    "SandboxCancelledError",
    "SandboxClosedError",
    "SandboxError",
    "SandboxProtocolError",
    "SandboxStartError",
    "SandboxTerminatedError",
    "SandboxTimeoutError",
    "SandboxUnavailableError",
    "SessionBusyError",
    "SessionError",
    "SessionExpiredError",
    "SubCallBudgetError",
    "SubModelError",
    "WorkspaceError",
]
