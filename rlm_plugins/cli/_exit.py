"""Exit codes of the command line, one per way a run can end."""

from __future__ import annotations

EXIT_OK = 0
EXIT_WRONG = 1
EXIT_USAGE = 2
EXIT_BUDGET = 3
EXIT_SANDBOX = 4
EXIT_MODEL = 5
EXIT_INTERRUPTED = 130

EXIT_CODES: dict[str, int] = {
    "final": EXIT_OK,
    "max_iterations": EXIT_BUDGET,
    "max_llm_calls": EXIT_BUDGET,
    "max_time": EXIT_BUDGET,
    "max_tokens": EXIT_BUDGET,
    "max_cost": EXIT_BUDGET,
    "sandbox_error": EXIT_SANDBOX,
    "error": EXIT_MODEL,
}
"""The exit code of `run` for each `RLMResult.finish_reason`."""


def exit_code(finish_reason: str) -> int:
    """The exit code for a finish reason; an unknown reason counts as a model failure."""
    return EXIT_CODES.get(finish_reason, EXIT_MODEL)
