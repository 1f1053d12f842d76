"""`rlm-plugins eval`: long-context tasks generated locally, scored against baselines (see `rlm_plugins.evals`)."""

from __future__ import annotations

from typing import Any


def register(commands: Any) -> None:
    """Add the `eval` subcommand."""
    from rlm_plugins.evals.cli import add_parser

    add_parser(commands)
