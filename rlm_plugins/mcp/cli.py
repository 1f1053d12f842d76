"""`rlm-plugins mcp`: serve the gateway over stdio (default) or streamable HTTP."""

from __future__ import annotations

import argparse
import os
import sys


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Register the `mcp` subcommand."""
    cmd = commands.add_parser("mcp", help="serve a workspace to IDE agents over MCP (stdio, or --http)")
    cmd.add_argument("--root", action="append", default=None, help="workspace directory (repeatable; default .)")
    cmd.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp instead of stdio")
    cmd.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    cmd.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    cmd.add_argument("--token", action="append", default=None, help="bearer token for HTTP (or RLM_MCP_TOKEN)")
    cmd.add_argument("--model", help="root model for rlm_query, e.g. openai/gpt-5-mini")
    cmd.add_argument("--sub-model", help="model for llm_query (default: --model)")
    cmd.add_argument("--api-base", help="OpenAI-compatible endpoint for both models")
    cmd.add_argument("--api-key", help="key for both models (default: the provider's env var)")
    cmd.add_argument("--sandbox", choices=["local", "inprocess", "e2b"], default="local")
    cmd.add_argument("--log-dir", default="rlm_logs/mcp", help="provenance and trajectory logs (default rlm_logs/mcp)")
    cmd.add_argument("--max-iterations", type=int, default=20, help="largest rlm_query budget a client may ask for")
    cmd.add_argument("--max-llm-calls", type=int, default=200)
    cmd.add_argument("--max-time", type=float, default=600.0)
    cmd.add_argument("--max-cost", type=float, default=None)
    cmd.add_argument("--calls-per-minute", type=int, default=120, help="per-client rate limit over all tools")
    cmd.add_argument("--search-timeout", type=float, default=10.0, help="seconds one search may run (default 10)")
    cmd.set_defaults(handler=run)
    return cmd


def run(args: argparse.Namespace) -> int:
    """Start the gateway; returns the exit code."""
    from rlm_plugins.mcp.gateway import GatewayConfig
    from rlm_plugins.mcp.server import serve_http, serve_stdio

    tokens = list(args.token or []) or ([os.environ["RLM_MCP_TOKEN"]] if os.environ.get("RLM_MCP_TOKEN") else [])
    if args.http and not tokens:
        print("rlm-plugins: error: --http needs --token (or RLM_MCP_TOKEN): clients must authenticate", file=sys.stderr)
        return 2
    roots = args.root or ["."]
    for root in roots:
        if not os.path.isdir(root):
            print(f"rlm-plugins: error: --root {root!r} is not a directory", file=sys.stderr)
            return 2
    config = GatewayConfig(
        roots=roots,
        model=args.model,
        sub_model=args.sub_model,
        sandbox=args.sandbox,
        api_base=args.api_base,
        api_key=args.api_key or ("sk-no-key-needed" if args.api_base else None),
        budget={
            "max_iterations": args.max_iterations,
            "max_llm_calls": args.max_llm_calls,
            "max_time": args.max_time,
            "max_cost": args.max_cost,
        },
        calls_per_minute=args.calls_per_minute,
        search_timeout=args.search_timeout,
        log_dir=args.log_dir,
    )
    if args.http:
        serve_http(config, tokens, host=args.host, port=args.port)
    else:
        serve_stdio(config)
    return 0
