"""Building the standalone RLM from options, running it with stdout kept clean, and reporting how it ended."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any

from rlm_plugins.cli._exit import exit_code
from rlm_plugins.cli._options import local_key


def build(args: argparse.Namespace, scripted: bool = False) -> Any:
    """The standalone RLM the options describe; `scripted` swaps in the offline demo's models."""
    from rlm_plugins.core.logger import RLMLogger
    from rlm_plugins.standalone.rlm import RLM

    logger = RLMLogger(args.log_dir) if args.log_dir else None
    common: dict[str, Any] = {
        "sandbox": args.sandbox,
        "max_iterations": args.max_iterations,
        "logger": logger,
        "verbose": args.verbose,
        "api_base": args.api_base,
        "api_key": local_key(args),
    }
    if scripted:
        from rlm_plugins.core.callables import CallableSubModel
        from rlm_plugins.standalone.demo import scripted_policy, scripted_sub

        sub = CallableSubModel(scripted_sub, name="scripted-sub")
        return RLM(model=None, policy=scripted_policy(), sub_model=sub, **common)
    return RLM(model=args.model, sub_model=args.sub_model, **common)


def complete(rlm: Any, context: Any, query: str) -> Any:
    """Run; anything printed meanwhile (litellm's console output included) goes to stderr, never stdout."""
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return rlm.completion(context, root_prompt=query)
    finally:
        report_log(rlm)


def report_log(rlm: Any) -> None:
    """Say where the JSONL log went, when one was written."""
    path = getattr(getattr(rlm, "logger", None), "log_file_path", None)
    if path and os.path.exists(path):
        print(f"rlm-plugins: log written to {path} (open it with: rlm-plugins view {path})", file=sys.stderr)


def report(result: Any) -> int:
    """Print how the run ended on stderr; returns the exit code for its finish reason."""
    reason = result.finish_reason
    code = exit_code(reason)
    summary = f"{result.iterations} iterations, {result.total_usage.calls} model calls, {result.execution_time:.2f}s"
    if reason == "final":
        print(f"rlm-plugins: finish_reason=final ({summary})", file=sys.stderr)
        return code
    print(f"rlm-plugins: no final answer: finish_reason={reason} ({summary}); exit code {code}", file=sys.stderr)
    if result.error:
        print(f"rlm-plugins: {result.error}", file=sys.stderr)
    if result.extracted:
        print(f"rlm-plugins: the extract step's best guess (not an answer): {result.extracted}", file=sys.stderr)
    return code
