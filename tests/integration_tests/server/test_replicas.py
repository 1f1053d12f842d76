"""Two server processes sharing a real redis-server: a tool-call continuation sent to the other replica resumes
the same REPL with sandbox="e2b" (over the fake envd), and is refused with a clear 409 with a local sandbox."""

from __future__ import annotations

import httpx
import pytest
from pytest_socket import enable_socket

from tests.fixtures_envd import settled
from tests.integration_tests.server._processes import ServerProcess
from tests.integration_tests.server.conftest import CLIENT_KEY
from tests.integration_tests.server.test_openai_client import ANSWERS, TIME, WEATHER

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:E2BSandbox uploads the driver")]
AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}


@pytest.fixture(autouse=True)
def _loopback_allowed():
    enable_socket()


@pytest.fixture
def replicas(tmp_path, upstream, redis_url):
    """`replicas(sandbox, options)`: two ready server processes on one Redis store."""
    started: list[ServerProcess] = []

    def start(sandbox: str, options: dict | None = None, env: dict | None = None) -> list[ServerProcess]:
        config = {
            "api_keys": [CLIENT_KEY],
            "redis_url": redis_url,
            "models": {
                "rlm": {
                    "root": "openai/root-model",
                    "sub": "openai/sub-model",
                    "api_base": upstream.base_url,
                    "api_key": "sk-test",
                    "sandbox": sandbox,
                    "sandbox_options": options or {},
                }
            },
        }
        pair = [ServerProcess(tmp_path, config, env) for _ in range(2)]
        started.extend(pair)
        return [p.wait_ready() for p in pair]

    yield start
    for proc in started:
        proc.stop()


def chat(server: ServerProcess, messages: list[dict]) -> httpx.Response:
    body = {"model": "rlm", "messages": messages, "tools": [WEATHER, TIME]}
    return httpx.post(server.base_url + "/chat/completions", json=body, headers=AUTH, timeout=120)


def continue_with(messages: list[dict], response: httpx.Response) -> list[dict]:
    message = response.json()["choices"][0]["message"]
    results = [
        {"role": "tool", "tool_call_id": c["id"], "content": ANSWERS[c["function"]["name"]]}
        for c in message["tool_calls"]
    ]
    return [*messages, message, *results]


def test_e2b_continuation_resumes_on_the_other_replica(replicas, envd):
    a, b = replicas("e2b", {"workdir": envd.workdir}, {"E2B_DEBUG": "true", "E2B_API_KEY": ""})
    uploads = len(envd.uploads)
    messages = [{"role": "user", "content": "[tools] Weather and time in Paris?"}]
    first = chat(a, messages)
    assert first.status_code == 200, first.text
    assert first.json()["choices"][0]["finish_reason"] == "tool_calls"
    messages = continue_with(messages, first)
    second = chat(b, messages)  # the other replica: sandbox reconnected by id, REPL variables intact
    assert second.status_code == 200, second.text
    assert second.json()["choices"][0]["finish_reason"] == "tool_calls"
    third = chat(a, continue_with(messages, second))
    assert third.status_code == 200, third.text
    assert third.json()["choices"][0]["message"]["content"] == "kept across pauses: sunny, 21C & 14:05"
    assert len(envd.uploads) > uploads, "the run's sandbox lived on the fake envd"
    assert settled(envd) == 0, "the e2b sandbox was closed when the run ended"


def test_local_continuation_on_the_other_replica_is_409_and_still_resumes_where_it_paused(replicas):
    a, b = replicas("local")
    messages = [{"role": "user", "content": "[tools] Weather and time in Paris?"}]
    messages = continue_with(messages, chat(a, messages))
    wrong = chat(b, messages)
    assert wrong.status_code == 409
    error = wrong.json()["error"]
    assert error["code"] == "session_on_other_replica" and "sticky" in error["message"]
    right = chat(a, messages)
    assert right.status_code == 200 and right.json()["choices"][0]["finish_reason"] == "tool_calls"
