"""Pytest fixtures that start scripted OpenAI-compatible servers on loopback and close them after the test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.openai_server import Script, ScriptedOpenAIServer

# litellm fetches its model cost map from the internet at import unless told to use the bundled one.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture
def scripted_openai() -> Iterator[Callable[..., ScriptedOpenAIServer]]:
    """Factory: `scripted_openai(script, models=...)` starts a `ScriptedOpenAIServer`; all are closed at teardown.

    Examples:
        >>> def test_hello(scripted_openai):  # doctest: +SKIP
        ...     server = scripted_openai(["Hello!"])
        ...     LiteLLMChat("openai/scripted", api_base=server.base_url, api_key="sk-test")("Hi").text
    """
    servers: list[ScriptedOpenAIServer] = []

    def start(script: Script, **kwargs: Any) -> ScriptedOpenAIServer:
        server = ScriptedOpenAIServer(script, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def standalone_rlm(server: ScriptedOpenAIServer, **kwargs: Any) -> Any:
    """The standalone RLM with root "openai/root-model" and sub "openai/sub-model", both on `server`."""
    from rlm_plugins import RLM

    return RLM(
        model="openai/root-model",
        sub_model="openai/sub-model",
        api_base=server.base_url,
        api_key="sk-test",
        model_kwargs={"num_retries": 0},
        **kwargs,
    )
