"""The official `rlms` constructor's vocabulary: its environments, and clear errors for what we do not take."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from rlm_plugins.errors import ConfigurationError, UnknownArgumentError

ENVIRONMENTS = {"local": "local", "docker": "docker", "e2b": "e2b", "ipython": "inprocess", "inprocess": "inprocess"}
"""Official `environment=` names and the sandbox kind each maps to."""
UNSUPPORTED_ENVIRONMENTS = ("daytona", "modal", "prime")
"""Official environments rlm-plugins has no sandbox for."""
IGNORED = ("orchestrator",)
"""Official arguments accepted for compatibility that change nothing here (a prompt variant of the official
package); passing one warns."""


def sandbox_kind(environment: str, persistent: bool) -> str:
    """The sandbox kind for an official `environment=` name.

    Raises:
        ConfigurationError: the environment is unknown, or one we have no sandbox for (named in the message).
    """
    if environment in ENVIRONMENTS:
        return ENVIRONMENTS[environment]
    supported = "'local' (a subprocess), 'docker', 'e2b' or 'ipython' (in-process)"
    if environment in UNSUPPORTED_ENVIRONMENTS:
        problem = f"rlm-plugins has no {environment} sandbox (nor {', '.join(UNSUPPORTED_ENVIRONMENTS)})"
    else:
        problem = f"it is not an environment rlm-plugins knows ({', '.join(sorted(ENVIRONMENTS))})"
    if persistent:
        msg = f"persistent=True is not supported for environment={environment!r}: {problem}; use {supported}"
    else:
        msg = f"environment={environment!r} is not supported: {problem}; use {supported}, or pass sandbox="
    raise ConfigurationError(msg)


def check_arguments(extra: Mapping[str, Any], valid: Iterable[str], owner: str = "RLM") -> None:
    """Raise `UnknownArgumentError` naming each unexpected keyword argument and the nearest valid one."""
    if not extra:
        return
    names = sorted(valid)
    parts = []
    for name in sorted(extra):
        near = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
        parts.append(f"{name!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    raise UnknownArgumentError(f"{owner}() got unexpected keyword arguments: {', '.join(parts)}")
