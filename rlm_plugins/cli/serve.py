"""`rlm-plugins serve`: the OpenAI-compatible RLM server (see `rlm_plugins.server`)."""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

from rlm_plugins.errors import ConfigurationError


def register(commands: Any) -> None:
    """Add the `serve` subcommand."""
    cmd = commands.add_parser(
        "serve",
        help="serve RLMs behind an OpenAI-compatible API (POST /v1/chat/completions)",
        description="Serve RLMs to any OpenAI client. A model name selects a configured RLM (--config) or is a "
        "'root:sub' pair such as gpt-5:gpt-5-mini. Without --api-key the server listens on 127.0.0.1 only.",
    )
    cmd.add_argument("--host", default=None, help="address to listen on (default: 127.0.0.1)")
    cmd.add_argument("--port", type=int, default=None, help="port (default: 8000)")
    cmd.add_argument("--config", help="a TOML or YAML file of server settings and [models.NAME] tables")
    cmd.add_argument("--api-base", help="upstream OpenAI-compatible endpoint for 'root:sub' model names")
    cmd.add_argument("--api-key", help="the bearer token clients must send (upstream keys come from the environment)")
    cmd.add_argument("--redis-url", help="keep paused runs in Redis (several replicas), e.g. redis://host:6379/0")
    cmd.add_argument("--sandbox", default=None, help="sandbox of 'root:sub' models (default: local)")
    cmd.add_argument("--insecure-public", action="store_true", help="allow a non-loopback --host without --api-key")
    cmd.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    """Build the config from the file and options, then serve until interrupted."""
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        raise ConfigurationError("rlm-plugins serve needs the server extra: pip install 'rlm-plugins[server]'")
    from rlm_plugins.server.app import serve as run_server
    from rlm_plugins.server.config import ServerConfig, load_config

    overrides: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "api_base": args.api_base,
        "redis_url": args.redis_url,
        "insecure_public": args.insecure_public or None,
    }
    config = load_config(args.config, **overrides) if args.config else ServerConfig(**_given(overrides))
    if args.api_key:
        config.api_keys = [args.api_key, *config.api_keys]
    if args.sandbox:
        config.sandbox = args.sandbox
    run_server(config)
    return 0


def _given(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}
