"""The `rlm-plugins` command: `run` answers a question over a file, `demo` finds a needle in a haystack."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from collections.abc import Sequence

from rlm_plugins.errors import RLMError

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rlm-plugins", description="Recursive Language Models from the shell.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="answer --query over a --context file (or - for stdin)")
    run.add_argument("--context", required=True, help="a file path, or - to read standard input")
    run.add_argument("--query", required=True, help="the question the root model sees")
    _model_options(run, required=True)
    demo = commands.add_parser("demo", help="find a hidden number in a 1M-line haystack (offline without --model)")
    demo.add_argument("--lines", type=int, default=1_000_000, help="haystack size in lines")
    _model_options(demo, required=False)
    from rlm_plugins.mcp.cli import add_parser as add_mcp

    add_mcp(commands)
    return parser


def _model_options(cmd: argparse.ArgumentParser, required: bool) -> None:
    cmd.add_argument("--model", required=required, help="root model, e.g. openai/gpt-5-mini")
    cmd.add_argument("--sub-model", help="model for llm_query (default: --model)")
    cmd.add_argument("--sandbox", choices=["local", "inprocess", "e2b"], default="local")
    cmd.add_argument("--max-iterations", type=int, default=20)
    cmd.add_argument("--log-dir", help="write a JSONL trajectory log (official rlms format) here")
    cmd.add_argument("--api-base", help="OpenAI-compatible endpoint for both models")
    cmd.add_argument("--api-key", help="key for both models (default: the provider's env var)")
    cmd.add_argument("--verbose", action="store_true", help="live progress on stderr")


def _fail(message: str) -> int:
    print(f"rlm-plugins: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _check_key(model: str, api_base: str | None) -> str | None:
    """A one-line complaint when the provider's key is missing, before any call is made."""
    if api_base:
        return None
    import litellm

    try:
        missing = litellm.validate_environment(model=model).get("missing_keys") or []
    except Exception:
        return None
    if missing:
        return f"model {model!r} needs {', '.join(missing)} in the environment (or pass --api-base for a local server)"
    return None


def _local_key(api_base: str | None) -> str | None:
    """OpenAI-compatible local servers often need no key, but the client insists on one: send a placeholder."""
    if api_base and not os.environ.get("OPENAI_API_KEY"):
        return "sk-no-key-needed"
    return None


def _build(args: argparse.Namespace, scripted: bool) -> object:
    from rlm_plugins.core.logger import RLMLogger
    from rlm_plugins.standalone.rlm import RLM

    logger = RLMLogger(args.log_dir) if args.log_dir else None
    common = {
        "sandbox": args.sandbox,
        "max_iterations": args.max_iterations,
        "logger": logger,
        "verbose": args.verbose,
        "api_base": args.api_base,
        "api_key": args.api_key or _local_key(args.api_base),
    }
    if scripted:
        from rlm_plugins.core.callables import CallableSubModel
        from rlm_plugins.standalone.demo import scripted_policy, scripted_sub

        return RLM(
            model=None,
            policy=scripted_policy(),
            sub_model=CallableSubModel(scripted_sub, name="scripted-sub"),
            **common,
        )
    return RLM(model=args.model, sub_model=args.sub_model, **common)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if getattr(args, "handler", None) is not None:
        return args.handler(args)
    if args.model:
        problem = _check_key(args.model, args.api_base)
        if problem:
            return _fail(problem)
    try:
        if args.command == "run":
            return _run(args)
        return _demo(args)
    except RLMError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.context == "-":
        context: object = sys.stdin.read()
    else:
        path = pathlib.Path(args.context)
        if not path.is_file():
            return _fail(f"--context {args.context!r} is not a readable file")
        context = path
    rlm = _build(args, scripted=False)
    result = rlm.completion(context, root_prompt=args.query)
    print(result.response)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from rlm_plugins.standalone.demo import QUESTION, make_haystack

    scripted = not args.model
    started = time.perf_counter()
    text, number = make_haystack(args.lines)
    print(
        f"built a haystack of {args.lines:,} lines ({len(text) / 1e6:.1f} MB) in {time.perf_counter() - started:.2f}s",
        file=sys.stderr,
    )
    if scripted:
        print(
            "no --model given: running OFFLINE with a scripted root model and sub-model. This proves the machinery "
            "(real code, real sandbox, real sub-call fan-out), not model quality.",
            file=sys.stderr,
        )
    rlm = _build(args, scripted=scripted)
    result = rlm.completion(text, root_prompt=QUESTION)
    usage = result.total_usage
    print(
        f"answer: {result.response}  (hidden number: {number}; "
        f"{'correct' if result.response.strip() == number else 'WRONG'})"
    )
    print(
        f"{result.iterations} iterations, {usage.calls} model calls, finish_reason={result.finish_reason}, "
        f"sandbox={rlm.sandbox_kind}, {result.execution_time:.2f}s",
        file=sys.stderr,
    )
    return 0 if result.response.strip() == number or not scripted else 1


if __name__ == "__main__":
    sys.exit(main())
