"""`rlm-plugins eval`: run a generated task against the RLM and the plain model, or render a report."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from rlm_plugins.errors import RLMError
from rlm_plugins.evals.methods import METHODS, Settings
from rlm_plugins.evals.oracle import ORACLE
from rlm_plugins.evals.registry import TASKS
from rlm_plugins.evals.runner import EvalConfig, run_eval
from rlm_plugins.evals.summary import summarize, table_rows

EPILOG = (
    "Offline (no key, no network): --model oracle runs the ideal solution and a scripted sub-model, which shows the "
    "harness and the engine work, not model quality. Tasks: " + ", ".join(sorted(TASKS)) + "; pick a variant with "
    "TASK:VARIANT (e.g. niah:indirect)."
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `eval` command to the `rlm-plugins` sub-command parsers."""
    cmd = subparsers.add_parser("eval", help="evaluate on generated long-context tasks", epilog=EPILOG)
    cmd.add_argument("task", nargs="?", help="niah, aggregate, pairs, multihop or codeqa (or TASK:VARIANT)")
    cmd.add_argument("--report", metavar="DIR", help="render report.html and the plot for an earlier --out DIR")
    cmd.add_argument("--size", type=int, help="context length in tokens (default: the task's, 8000)")
    cmd.add_argument("--n", type=int, default=10, help="number of examples")
    cmd.add_argument("--seed", type=int, default=0)
    cmd.add_argument("--model", help=f"root model (litellm name), or {ORACLE!r} for the offline oracle")
    cmd.add_argument("--sub-model", help="model for llm_query (default: --model)")
    cmd.add_argument("--methods", default="rlm,direct", help=f"comma-separated, of {','.join(METHODS)}")
    cmd.add_argument("--sandbox", choices=["local", "inprocess", "e2b"], default="local")
    cmd.add_argument("--out", default="rlm_eval", help="directory for results.jsonl, summary.json and logs")
    cmd.add_argument("--api-base", help="OpenAI-compatible endpoint for both models (vLLM, llama.cpp, ...)")
    cmd.add_argument("--api-key", help="key for both models (default: the provider's env var)")
    cmd.add_argument("--concurrency", type=int, default=4, help="examples answered at once")
    cmd.add_argument("--max-iterations", type=int, default=20)
    cmd.add_argument("--max-llm-calls", type=int, default=100, help="sub-calls per rlm run")
    cmd.add_argument("--context-window", type=int, help="the root model's window in tokens, when litellm lacks it")
    cmd.add_argument(
        "--system-role",
        choices=["system", "developer", "user"],
        default="system",
        help="'user' for chat templates without a system role: the instructions open the first user message",
    )
    cmd.set_defaults(handler=handle)
    return cmd


def handle(args: argparse.Namespace) -> int:
    """Run `rlm-plugins eval` from parsed arguments; returns the exit code."""
    from rlm_plugins.cli._main import fail

    try:
        return _handle(args)
    except RLMError as exc:
        return fail(str(exc))


def _handle(args: argparse.Namespace) -> int:
    from rlm_plugins.cli._main import fail
    from rlm_plugins.cli._options import check_keys, local_key

    if args.report:
        from rlm_plugins.evals.report import render_report

        print(render_report(args.report))
        return 0
    if not args.task or not args.model:
        return fail("eval needs a TASK and --model (or --report DIR); try --model oracle to run offline")
    models = argparse.Namespace(
        api_key=args.api_key,
        api_base=args.api_base,
        model=None if args.model == ORACLE else args.model,
        sub_model=None if args.sub_model == ORACLE else args.sub_model,
    )
    check_keys(models)
    settings = Settings(
        model=args.model,
        sub_model=args.sub_model,
        sandbox=args.sandbox,
        api_base=args.api_base,
        api_key=local_key(args),
        max_iterations=args.max_iterations,
        max_llm_calls=args.max_llm_calls,
        context_window=args.context_window,
        system_role=args.system_role,
    )
    config = EvalConfig(
        task=args.task,
        settings=settings,
        size=args.size,
        n=args.n,
        seed=args.seed,
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        concurrency=args.concurrency,
        out=args.out,
    )
    rows = _run_with_progress(config)
    _print_summary(rows)
    print(f"results: {args.out}/results.jsonl; report: rlm-plugins eval --report {args.out}", file=sys.stderr)
    return 0


def _run_with_progress(config: EvalConfig) -> list[dict[str, Any]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    total = config.n * len(config.methods)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, transient=True) as progress:
        bar = progress.add_task(f"{config.task} x {','.join(config.methods)}", total=total)
        return asyncio.run(run_eval(config, on_done=lambda row: progress.advance(bar)))


def _print_summary(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    header, body = table_rows(summarize(rows))
    table = Table(*header, title="rlm-plugins eval")
    for row in body:
        table.add_row(*row)
    Console().print(table)
