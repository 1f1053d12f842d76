"""`rlm-plugins mcp`: the MCP gateway for IDE agents (see `rlm_plugins.mcp`)."""

from __future__ import annotations

from typing import Any


def register(commands: Any) -> None:
    """Add the `mcp` subcommand."""
    from rlm_plugins.mcp.cli import add_parser

    add_parser(commands)
