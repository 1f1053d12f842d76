"""`main`: builds the parser from the subcommand modules and turns errors into one line and an exit code.

A subcommand is a public module of `rlm_plugins.cli` with a `register(commands)` function. `commands` is the
`argparse` subparsers object; `register` calls `commands.add_parser(name, help=...)`, adds its options and calls
`set_defaults(handler=fn)`, where `fn(args) -> int` returns the exit code. Keep imports at the top of such a module
light (heavy ones inside the handler), so that `--help` and argument errors stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from rlm_plugins._version import __version__
from rlm_plugins.cli._exit import EXIT_INTERRUPTED, EXIT_MODEL, EXIT_SANDBOX, EXIT_USAGE
from rlm_plugins.errors import ModelError, RLMError, SandboxError

EXIT_HELP = """exit codes:
  0  the run ended with a final answer
  1  demo only: the offline demo found the wrong number
  2  bad arguments or configuration (missing key, unreadable file, unwritable --log-dir, ...)
  3  a budget ran out before a final answer (max_iterations, max_llm_calls, max_time, max_tokens, max_cost)
  4  the sandbox failed (finish_reason sandbox_error, or it could not start)
  5  the model could not be called (unreachable endpoint, bad key, ...)
  130 interrupted"""


def command_modules() -> list[ModuleType]:
    """Every subcommand module of this package, sorted by name."""
    package = sys.modules[__package__ or "rlm_plugins.cli"]
    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if callable(getattr(module, "register", None)):
            found.append(module)
    return found


def build_parser() -> argparse.ArgumentParser:
    """The `rlm-plugins` parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="rlm-plugins",
        description="Recursive Language Models from the shell.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rlm-plugins {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in command_modules():
        module.register(commands)
    return parser


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """Print one error line on stderr and return `code`."""
    line = " ".join(str(message).split())
    print(f"rlm-plugins: error: {line}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see `EXIT_HELP`)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.handler(args))
    except ModelError as exc:
        return fail(str(exc), EXIT_MODEL)
    except SandboxError as exc:
        return fail(str(exc), EXIT_SANDBOX)
    except RLMError as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("rlm-plugins: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
