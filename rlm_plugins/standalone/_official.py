"""The official `rlms` constructor's vocabulary: its environments, and clear errors for what we do not take."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from rlm_plugins.errors import ConfigurationError, UnknownArgumentError
from rlm_plugins.models.pricing import context_window

ENVIRONMENTS = {"local": "local", "docker": "docker", "e2b": "e2b", "ipython": "inprocess", "inprocess": "inprocess"}
"""Official `environment=` names and the sandbox kind each maps to."""
UNSUPPORTED_ENVIRONMENTS = ("daytona", "modal", "prime")
"""Official environments rlm-plugins has no sandbox for."""
MAX_DEFAULT_HISTORY_TOKENS = 32_000
NO_COMPACTION_TOKENS = 2**40
"""The history budget of `compaction=False`: the whole history is sent every turn, as the official package does."""
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


def with_sampling(backend_kwargs: Mapping[str, Any] | None, sampling: Mapping[str, Any] | None) -> dict[str, Any]:
    """`backend_kwargs` with `sampling` merged into its `sampling_args`, as the official constructor does."""
    out = dict(backend_kwargs or {})
    if sampling:
        out["sampling_args"] = {**dict(out.get("sampling_args") or {}), **dict(sampling)}
    return out


def sub_client_args(
    backend: str | None,
    backend_kwargs: Mapping[str, Any] | None,
    other_backends: list[str] | None,
    other_backend_kwargs: list[Mapping[str, Any]] | None,
    sub_sampling_args: Mapping[str, Any] | None,
) -> tuple[str, dict[str, Any]] | None:
    """The (backend, backend_kwargs) of the sub-model's own client, or None when it has none: `other_backends[0]`,
    or with `sub_sampling_args` and no `other_backends`, a second client of the root backend (as in rlms 0.1.3)."""
    if other_backends is not None and len(other_backends) != 1:
        raise ConfigurationError("other_backends takes exactly one backend (the sub-model's), as in rlms 0.1.3")
    if other_backends:
        return other_backends[0], with_sampling((other_backend_kwargs or [{}])[0], sub_sampling_args)
    if sub_sampling_args is not None and backend is not None:
        return backend, with_sampling(backend_kwargs, sub_sampling_args)
    return None


def history_budget(model: str, tokens: int | None, compaction: bool | None, threshold: float) -> int | None:
    """The root history budget in tokens: as given, else from `compaction` and the model's known context window
    (None: compact at half the window, at most `MAX_DEFAULT_HISTORY_TOKENS`; True: at `threshold` of it; False:
    never)."""
    if tokens is not None:
        return tokens
    if compaction is False:
        return NO_COMPACTION_TOKENS
    window = context_window(model)
    if window is None:
        return None
    if compaction:
        if not 0 < threshold <= 1:
            raise ConfigurationError(f"compaction_threshold_pct={threshold!r} must be in (0, 1]")
        return int(window * threshold)
    return min(window // 2, MAX_DEFAULT_HISTORY_TOKENS)
