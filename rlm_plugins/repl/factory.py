"""`create_sandbox(kind, **options)`: one entry point for every sandbox backend."""

from __future__ import annotations

import importlib
from typing import Any

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.repl.base import BaseSandbox

BACKENDS: dict[str, str] = {
    "local": "rlm_plugins.repl.local:LocalSandbox",
    "inprocess": "rlm_plugins.repl.inprocess:InProcessSandbox",
    "e2b": "rlm_plugins.repl.e2b:E2BSandbox",
}


def sandbox_class(kind: str) -> type[BaseSandbox]:
    """The class behind a sandbox kind."""
    try:
        module_name, _, cls_name = BACKENDS[kind].partition(":")
    except KeyError:
        msg = f"unknown sandbox kind {kind!r}; use one of: {', '.join(sorted(BACKENDS))}"
        raise ConfigurationError(msg) from None
    return getattr(importlib.import_module(module_name), cls_name)


def create_sandbox(kind: str = "local", **options: Any) -> BaseSandbox:
    """A new, not yet started sandbox of `kind` ("local", "inprocess" or "e2b").

    Examples:
        >>> with create_sandbox("inprocess") as sb:
        ...     sb.execute("FINAL(6 * 7)").final.value
        42
    """
    return sandbox_class(kind)(**options)
