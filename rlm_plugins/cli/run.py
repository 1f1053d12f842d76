"""`rlm-plugins run`: answer --query over a --context file (or standard input)."""

from __future__ import annotations

import argparse
from typing import Any

from rlm_plugins.cli._context import read_context
from rlm_plugins.cli._main import EXIT_HELP
from rlm_plugins.cli._options import add_model_options, check_keys, check_options


def register(commands: Any) -> None:
    """Add the `run` subcommand."""
    cmd = commands.add_parser(
        "run",
        help="answer --query over a --context file (or - for stdin)",
        description="Answer --query over --context. The answer goes to stdout only when the run ends with a final "
        "answer; how it ended goes to stderr, and the exit code says it too.",
        epilog=EXIT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("--context", required=True, help="a file path, or - to read standard input")
    cmd.add_argument("--query", required=True, help="the question the root model sees")
    cmd.add_argument("--strict", action="store_true", help="refuse an empty or binary context instead of warning")
    add_model_options(cmd, required=True)
    cmd.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Check everything cheap first, then the keys, then run and report."""
    from rlm_plugins.cli._runner import build, complete, report

    check_options(args)
    context = read_context(args.context, args.strict)
    check_keys(args)
    result = complete(build(args), context, args.query)
    if result.finish_reason == "final":
        print(result.response)
    return report(result)
