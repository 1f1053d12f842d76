"""The `rlm-plugins` command line.

Each public module of this package is one subcommand: it defines `register(commands)`, which adds its parser
with `commands.add_parser(...)` and sets `handler=` to a function taking the parsed arguments and returning the
exit code. `main` finds those modules by itself, so adding a subcommand is adding a file (see `_main.py`).
"""

from rlm_plugins.cli._exit import EXIT_CODES, exit_code
from rlm_plugins.cli._main import main

__all__ = ["EXIT_CODES", "exit_code", "main"]
