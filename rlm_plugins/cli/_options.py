"""Model and sandbox options shared by `run` and `demo`, checked cheaply before anything heavy is imported."""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
from pathlib import Path

from rlm_plugins.errors import ConfigurationError

SANDBOXES = ("local", "inprocess", "e2b", "docker")


def add_model_options(cmd: argparse.ArgumentParser, required: bool) -> None:
    """The options that choose models, sandbox, budget, log and progress output."""
    cmd.add_argument("--model", required=required, help="root model, a litellm id such as openai/gpt-5-mini")
    cmd.add_argument("--sub-model", help="model for llm_query (default: --model)")
    cmd.add_argument("--sandbox", choices=SANDBOXES, default="local", help="where the code runs (default: local)")
    cmd.add_argument("--max-iterations", type=int, default=20, help="root-model turns (default: 20)")
    cmd.add_argument(
        "--log-dir",
        help="write the run's JSONL trajectory into this directory (default: no log); open it with `rlm-plugins view`",
    )
    cmd.add_argument("--api-base", help="OpenAI-compatible endpoint for both models")
    cmd.add_argument("--api-key", help="key for both models (default: the provider's environment variable)")
    cmd.add_argument("--verbose", action="store_true", help="live progress on stderr, with the sandbox's isolation")


def check_options(args: argparse.Namespace) -> None:
    """Checks that need no heavy import: numbers, the log directory, the e2b SDK and key."""
    if args.max_iterations < 1:
        raise ConfigurationError(f"--max-iterations {args.max_iterations}: give at least 1")
    if args.log_dir:
        check_log_dir(args.log_dir)
    if args.sandbox == "e2b":
        if importlib.util.find_spec("e2b") is None:
            raise ConfigurationError("--sandbox e2b needs the E2B SDK: pip install 'rlm-plugins[e2b]'")
        if not os.environ.get("E2B_API_KEY") and os.environ.get("E2B_DEBUG", "").lower() != "true":
            raise ConfigurationError("--sandbox e2b needs E2B_API_KEY in the environment")


def check_log_dir(log_dir: str) -> None:
    """Create `log_dir` if needed and prove a file can be written there."""
    path = Path(log_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".rlm-write-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigurationError(f"--log-dir {log_dir!r} is not writable ({reason}); pass another directory") from None


def check_keys(args: argparse.Namespace) -> None:
    """Each model's provider key is set, unless --api-key or --api-base makes it unnecessary (imports litellm)."""
    if args.api_key or args.api_base:
        return
    for flag, model in (("--model", args.model), ("--sub-model", args.sub_model)):
        if not model:
            continue
        missing = _missing_keys(model)
        if missing:
            names = " and ".join(missing)
            raise ConfigurationError(
                f"{flag} {model} needs {names}: set it in the environment, or pass --api-key "
                "(or --api-base for a local server)"
            )


def _missing_keys(model: str) -> list[str]:
    import litellm

    try:
        return list(litellm.validate_environment(model=model).get("missing_keys") or [])
    except Exception:
        return []


def local_key(args: argparse.Namespace) -> str | None:
    """The key to send: --api-key, or a placeholder for a keyless local server (the client insists on one)."""
    if args.api_key:
        return args.api_key
    if args.api_base and not os.environ.get("OPENAI_API_KEY"):
        return "sk-no-key-needed"
    return None
