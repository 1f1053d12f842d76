"""`rlm-plugins demo`: find a hidden number in a haystack, offline with scripted models unless --model is given."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rlm_plugins.cli._exit import EXIT_OK, EXIT_WRONG
from rlm_plugins.cli._options import add_model_options, check_keys, check_options
from rlm_plugins.errors import ConfigurationError


def register(commands: Any) -> None:
    """Add the `demo` subcommand."""
    cmd = commands.add_parser("demo", help="find a hidden number in a 1M-line haystack (offline without --model)")
    cmd.add_argument("--lines", type=int, default=1_000_000, help="haystack size in lines (default: 1,000,000)")
    add_model_options(cmd, required=False)
    cmd.set_defaults(handler=demo)


def demo(args: argparse.Namespace) -> int:
    """Build the haystack, run, and say whether the number found is the hidden one."""
    if args.lines < 1:
        raise ConfigurationError(f"--lines {args.lines}: the haystack needs at least 1 line")
    check_options(args)
    if args.model:
        check_keys(args)
    from rlm_plugins.cli._runner import build, complete, report
    from rlm_plugins.standalone.demo import QUESTION, make_haystack

    scripted = not args.model
    started = time.perf_counter()
    text, number = make_haystack(args.lines)
    took = time.perf_counter() - started
    print(f"built a haystack of {args.lines:,} lines ({len(text) / 1e6:.1f} MB) in {took:.2f}s", file=sys.stderr)
    if scripted:
        print(
            "no --model given: running OFFLINE with a scripted root model and sub-model. This proves the machinery "
            "(real code, real sandbox, real sub-call fan-out), not model quality.",
            file=sys.stderr,
        )
    rlm = build(args, scripted=scripted)
    result = complete(rlm, text, QUESTION)
    code = report(result)
    if result.finish_reason != "final":
        return code
    correct = result.response.strip() == number
    print(f"answer: {result.response}  (hidden number: {number}; {'correct' if correct else 'WRONG'})")
    print(f"sandbox={rlm.sandbox_kind}", file=sys.stderr)
    return EXIT_OK if correct or not scripted else EXIT_WRONG
