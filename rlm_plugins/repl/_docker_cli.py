"""`rlm-plugins sandbox prune | build-image`: the docker sandbox's subcommands of the `rlm-plugins` command."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rlm_plugins.errors import RLMError
from rlm_plugins.repl._docker_engine import ENGINES

COMMAND = "sandbox"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `sandbox` with its `prune` and `build-image` actions to an argparse subparsers object."""
    from rlm_plugins.repl.docker import DEFAULT_IMAGE

    sandbox = subparsers.add_parser(COMMAND, help="manage docker sandboxes: prune leftovers, build the image")
    actions = sandbox.add_subparsers(dest="sandbox_action", required=True)
    prune = actions.add_parser("prune", help="remove sandbox containers (and staging dirs) whose process is gone")
    prune.add_argument("--all", action="store_true", help="remove every sandbox container, running ones too")
    build = actions.add_parser("build-image", help="build the sandbox image from sandbox/Dockerfile")
    build.add_argument("--tag", default=DEFAULT_IMAGE, help=f"image tag (default {DEFAULT_IMAGE})")
    build.add_argument("--file", help="the Dockerfile (default: sandbox/Dockerfile of this checkout)")
    for action in (prune, build):
        action.add_argument("--engine", choices=ENGINES, default="docker")
    return sandbox


def main(args: argparse.Namespace) -> int:
    """Carry out a parsed `sandbox` command; the process exit code (errors are printed, not raised)."""
    try:
        return _run(args)
    except RLMError as exc:
        print(f"rlm-plugins: error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from rlm_plugins.repl import _docker_admin

    if args.sandbox_action == "prune":
        removed = _docker_admin.prune(args.engine, everything=args.all)
        print(f"removed {len(removed)} sandbox container(s)" + "".join(f"\n{c}" for c in removed))
        return 0
    code = _docker_admin.build_image(args.tag, args.engine, args.file)
    if code == 0:
        print(f"built {args.tag}; use create_sandbox('docker', image={args.tag!r})", file=sys.stderr)
    return code
