"""`create_sandbox(kind, **options)`: one entry point for every sandbox backend."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.repl.base import BaseSandbox

BACKENDS: dict[str, str] = {
    "local": "rlm_plugins.repl.local:LocalSandbox",
    "inprocess": "rlm_plugins.repl.inprocess:InProcessSandbox",
    "e2b": "rlm_plugins.repl.e2b:E2BSandbox",
    "docker": "rlm_plugins.repl.docker:DockerSandbox",
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
    """A new, not yet started sandbox of `kind` ("local", "inprocess", "e2b" or "docker").

    Examples:
        >>> with create_sandbox("inprocess") as sb:
        ...     sb.execute("FINAL(6 * 7)").final.value
        42
    """
    return sandbox_class(kind)(**options)


def sandbox_factory(sandbox: str | Callable[..., BaseSandbox] = "local", **options: Any) -> Callable[..., BaseSandbox]:
    """A factory the engine calls once per run: `factory(max_output_chars=..., final_fields=...)`.

    `sandbox` is a kind name, or a callable returning a new sandbox (it receives the engine's settings as
    keyword arguments when it accepts them).
    """
    if isinstance(sandbox, str):
        cls = sandbox_class(sandbox)

        def make(**settings: Any) -> BaseSandbox:
            return cls(**{**options, **settings})

        return make
    if not callable(sandbox):
        raise ConfigurationError(f"sandbox={sandbox!r} is neither a sandbox kind nor a callable returning a sandbox")

    def make_custom(**settings: Any) -> BaseSandbox:
        try:
            return sandbox(**{**options, **settings})
        except TypeError:
            made = sandbox(**options)
            for key, value in settings.items():
                setattr(made, key, value)
            return made

    return make_custom
