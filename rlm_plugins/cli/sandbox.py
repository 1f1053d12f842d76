"""`rlm-plugins sandbox prune | build-image`: housekeeping for the docker sandbox kind."""

from __future__ import annotations

from typing import Any

from rlm_plugins.repl import _docker_cli


def register(commands: Any) -> None:
    """Add the `sandbox` subcommand."""
    _docker_cli.add_parser(commands).set_defaults(handler=_docker_cli.main)
