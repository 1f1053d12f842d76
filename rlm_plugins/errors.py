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
    ├── LimitExceededError        a run hit a limit, raised by `RLM(on_limit="raise")` (the official `rlms` way);
    │   │                         `result` keeps everything the run computed, `partial_answer` its best answer
    │   ├── BudgetExceededError        max_cost / max_budget (`spent`, `budget`)
    │   ├── TimeoutExceededError       max_time / max_timeout (`elapsed`, `timeout`)
    │   ├── TokenLimitExceededError    max_tokens (`tokens_used`, `token_limit`)
    │   ├── ErrorThresholdExceededError  max_errors consecutive failing turns (`error_count`, `threshold`, `last_error`)
    │   └── CancellationError          the run was cancelled or interrupted (Ctrl+C)
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


class LimitExceededError(RLMError):
    """A run stopped at a limit; raised only with `RLM(on_limit="raise")`, the official `rlms` package's way.

    `partial_answer` is the run's best answer so far (the extract step's text), `result` the whole `RLMResult`
    (steps, usage, cost), so nothing computed is lost. Catch this class for every limit at once.
    """

    def __init__(self, message: str, *, partial_answer: str | None = None, result: object = None) -> None:
        super().__init__(message)
        self.partial_answer = partial_answer
        self.result = result


class BudgetExceededError(LimitExceededError):
    """The run tree spent more than `budget` dollars (`max_cost`, official name `max_budget`)."""

    def __init__(
        self,
        spent: float,
        budget: float,
        message: str | None = None,
        *,
        partial_answer: str | None = None,
        result: object = None,
    ) -> None:
        self.spent, self.budget = spent, budget
        text = message or f"Budget exceeded: spent ${spent:.6f} of ${budget:.6f} budget"
        super().__init__(text, partial_answer=partial_answer, result=result)


class TimeoutExceededError(LimitExceededError):
    """The run took longer than `timeout` seconds (`max_time`, official name `max_timeout`)."""

    def __init__(
        self,
        elapsed: float,
        timeout: float,
        partial_answer: str | None = None,
        message: str | None = None,
        *,
        result: object = None,
    ) -> None:
        self.elapsed, self.timeout = elapsed, timeout
        text = message or f"Timeout exceeded: {elapsed:.1f}s of {timeout:.1f}s limit"
        super().__init__(text, partial_answer=partial_answer, result=result)


class TokenLimitExceededError(LimitExceededError):
    """The run tree used more than `token_limit` input plus output tokens (`max_tokens`)."""

    def __init__(
        self,
        tokens_used: int,
        token_limit: int,
        partial_answer: str | None = None,
        message: str | None = None,
        *,
        result: object = None,
    ) -> None:
        self.tokens_used, self.token_limit = tokens_used, token_limit
        text = message or f"Token limit exceeded: {tokens_used:,} of {token_limit:,} tokens"
        super().__init__(text, partial_answer=partial_answer, result=result)


class ErrorThresholdExceededError(LimitExceededError):
    """`threshold` turns in a row ran code that failed (`max_errors`); `last_error` is the last failure."""

    def __init__(
        self,
        error_count: int,
        threshold: int,
        last_error: str | None = None,
        partial_answer: str | None = None,
        message: str | None = None,
        *,
        result: object = None,
    ) -> None:
        self.error_count, self.threshold, self.last_error = error_count, threshold, last_error
        text = message or f"Error threshold exceeded: {error_count} consecutive errors (limit: {threshold})"
        super().__init__(text, partial_answer=partial_answer, result=result)


class CancellationError(LimitExceededError):
    """The run was cancelled (`cancel()`, Ctrl+C) before it answered."""

    def __init__(self, partial_answer: str | None = None, message: str | None = None, *, result: object = None) -> None:
        super().__init__(message or "Execution cancelled by user", partial_answer=partial_answer, result=result)


class SessionError(RLMError):
    """Something went wrong with a session or a paused run."""


class SessionExpiredError(SessionError, LookupError):
    """The session or paused run is gone (idle too long, expired, closed, or already resumed)."""


class SessionBusyError(SessionError):
    """A session runs one turn at a time; a second turn was started while one is running."""


class ContinuationMismatchError(SessionError):
    """Tool results name a paused run's calls, but the conversation before those calls is not the paused one."""


__all__ = [
    "BudgetExceededError",
    "CancellationError",
    "ConfigurationError",
    "ContinuationMismatchError",
    "ErrorThresholdExceededError",
    "IsolationUnavailableError",
    "LimitExceededError",
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
    "TimeoutExceededError",
    "TokenLimitExceededError",
    "UnknownArgumentError",
    "WorkspaceError",
]
