"""Fixtures: a scripted upstream model server and the RLM server (uvicorn in a thread) on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the server tests need the server extra: pip install 'rlm-plugins[server]'")

from rlm_plugins.server import ModelConfig, ServerConfig, create_app
from tests.integration_tests.server._scripts import script

CLIENT_KEY = "sk-client"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def upstream(scripted_openai: Callable[..., Any]) -> Any:
    """The scripted OpenAI-compatible server the RLM's root and sub models call."""
    return scripted_openai(script)


def model_config(upstream: Any, **kw: Any) -> ModelConfig:
    """The served model "rlm": root and sub on the scripted upstream, a local sandbox."""
    return ModelConfig(
        root="openai/root-model", sub="openai/sub-model", api_base=upstream.base_url, api_key="sk-test", **kw
    )


class RunningServer:
    """An RLM server in a background thread; `base_url` ends in /v1."""

    def __init__(self, config: ServerConfig, store: Any = None) -> None:
        import uvicorn

        self.config = config
        self.app = create_app(config, store)
        self.state = self.app.state.rlm
        config.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=config.port, log_config=None, lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.base_url = f"http://127.0.0.1:{config.port}/v1"
        self.root_url = f"http://127.0.0.1:{config.port}"

    def start(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the RLM server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)


@pytest.fixture
def serve(upstream: Any) -> Iterator[Callable[..., RunningServer]]:
    """`serve(**ServerConfig fields)` starts an RLM server serving "rlm" (plus `models=`); stopped at teardown."""
    running: list[RunningServer] = []

    def start(store: Any = None, model: dict[str, Any] | None = None, **fields: Any) -> RunningServer:
        models = {"rlm": model_config(upstream, **(model or {})), **fields.pop("models", {})}
        fields.setdefault("api_keys", [CLIENT_KEY])
        server = RunningServer(ServerConfig(models=models, **fields), store).start()
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def server(serve: Callable[..., RunningServer]) -> RunningServer:
    """An RLM server with the defaults and the client key `CLIENT_KEY`."""
    return serve()
