"""`create_sandbox(kind, **options)`: one entry point for every backend."""

from __future__ import annotations

import pytest

from rlm_plugins.errors import ConfigurationError, RLMError
from rlm_plugins.repl import InProcessSandbox, LocalSandbox, create_sandbox, sandbox_class
from rlm_plugins.repl.factory import BACKENDS


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(ConfigurationError) as info:
        create_sandbox("lxc")
    message = str(info.value)
    assert message.startswith("unknown sandbox kind 'lxc'; use one of: ")
    assert message.endswith(", ".join(sorted(BACKENDS)))
    assert {"local", "inprocess", "e2b"} <= set(BACKENDS)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, RLMError)


def test_kinds_map_to_classes() -> None:
    assert sandbox_class("local") is LocalSandbox
    assert sandbox_class("inprocess") is InProcessSandbox


def test_options_reach_the_backend_and_nothing_starts() -> None:
    local = create_sandbox("local", isolation="none", max_output_chars=7, timeout=5.0)
    assert isinstance(local, LocalSandbox)
    assert (local.requested_isolation, local.max_output_chars, local.timeout) == ("none", 7, 5.0)
    assert local._proc is None  # created, not started
    local.close()


def test_default_kind_is_local() -> None:
    sb = create_sandbox()
    assert isinstance(sb, LocalSandbox)
    sb.close()


def test_bad_option_names_the_option() -> None:
    with pytest.raises(ConfigurationError, match="isolation='maybe'"):
        create_sandbox("local", isolation="maybe")
