"""Operations: health and readiness, Prometheus metrics, JSON logs with request ids, graceful shutdown, the CLI."""

from __future__ import annotations

import asyncio
import json
import signal

import httpx
import pytest

from rlm_plugins.cli import main
from tests.integration_tests.server._processes import ServerProcess
from tests.integration_tests.server._scripts import alive, descendants, wait_for
from tests.integration_tests.server.conftest import CLIENT_KEY
from tests.integration_tests.server.test_openai_client import TIME, WEATHER, client

AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}


def test_health_and_readiness(server):
    assert httpx.get(server.root_url + "/healthz", timeout=10).json() == {"status": "ok"}
    ready = httpx.get(server.root_url + "/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_metrics_count_requests_runs_sub_calls_tokens_and_errors(server):
    client(server).chat.completions.create(model="rlm", messages=[{"role": "user", "content": "[plain] Hi"}])
    client(server).chat.completions.create(
        model="rlm", messages=[{"role": "user", "content": "[tools] Hi"}], tools=[WEATHER, TIME]
    )
    httpx.post(server.base_url + "/chat/completions", json={"model": "nope", "messages": []}, headers=AUTH)
    text = httpx.get(server.root_url + "/metrics", timeout=10).text
    assert metric(text, 'rlm_requests_total{path="/v1/chat/completions",status="200"}') == 2
    assert metric(text, 'rlm_requests_total{path="/v1/chat/completions",status="400"}') == 1
    assert metric(text, "rlm_runs_in_flight") == 0
    assert metric(text, "rlm_runs_paused_total") == 1
    assert metric(text, "rlm_run_duration_seconds_count") == 2
    assert metric(text, "rlm_sub_calls_total") == 1
    assert metric(text, 'rlm_tokens_total{kind="input"}') > 0
    assert metric(text, 'rlm_errors_total{code="None",type="invalid_request_error"}') == 1


def test_request_id_is_echoed(server):
    response = httpx.get(server.root_url + "/healthz", headers={"X-Request-ID": "req-42"}, timeout=10)
    assert response.headers["x-request-id"] == "req-42"
    assert len(httpx.get(server.root_url + "/healthz", timeout=10).headers["x-request-id"]) == 32


@pytest.fixture
def process(tmp_path, upstream):
    started: list[ServerProcess] = []

    def start(**settings) -> ServerProcess:
        model = {"root": "openai/root-model", "sub": "openai/sub-model", "api_base": upstream.base_url}
        config = {"api_keys": [CLIENT_KEY], "models": {"rlm": {**model, "api_key": "sk-test"}}, **settings}
        proc = ServerProcess(tmp_path, config).wait_ready()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def test_logs_are_json_lines_with_the_request_id(process):
    server = process()
    body = {"model": "rlm", "messages": [{"role": "user", "content": "[plain] Hi"}]}
    headers = {**AUTH, "X-Request-ID": "trace-me"}
    assert httpx.post(server.base_url + "/chat/completions", json=body, headers=headers, timeout=60).status_code == 200
    server.stop()
    records = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.strip()]
    mine = [r for r in records if r.get("request_id") == "trace-me"]
    assert any(r["message"] == "request" and r["status"] == 200 and r["path"] == "/v1/chat/completions" for r in mine)
    (run,) = [r for r in mine if r["message"] == "run"]
    assert run["finish_reason"] == "final" and run["iterations"] == 2 and run["calls"] == 3
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


def ask(text: str) -> dict:
    return {"model": "rlm", "messages": [{"role": "user", "content": text}]}


async def test_graceful_shutdown_finishes_short_runs_and_cancels_long_ones(process):
    server = process(shutdown_grace=4)
    url = server.base_url + "/chat/completions"
    async with httpx.AsyncClient(timeout=120) as http:
        slow = asyncio.ensure_future(http.post(url, json=ask("[slow] x"), headers=AUTH))
        await wait_for(lambda: len(descendants(server.proc.pid)) > 0)
        sandboxes = descendants(server.proc.pid)
        short = asyncio.ensure_future(
            http.post(
                url, json={"model": "rlm", "messages": [{"role": "user", "content": "[delayed] x"}]}, headers=AUTH
            )
        )
        await asyncio.sleep(0.5)  # the short run is waiting for its 2 s root reply
        server.proc.send_signal(signal.SIGTERM)
        finished = await short
        assert finished.status_code == 200 and finished.json()["choices"][0]["message"]["content"] == "done in time"
        await asyncio.gather(slow, return_exceptions=True)
    assert await asyncio.to_thread(server.proc.wait, 60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    await wait_for(lambda: not any(alive(pid) for pid in sandboxes))
    assert "Application shutdown complete" in server.log_path.read_text()


def test_cli_refuses_a_public_host_without_a_key(capsys):
    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    assert "--insecure-public" in capsys.readouterr().err


def test_cli_reports_a_bad_config_file(tmp_path, capsys):
    bad = tmp_path / "server.toml"
    bad.write_text("max_concurrent_runs = 0\n")
    assert main(["serve", "--config", str(bad)]) == 2
    assert "max_concurrent_runs=0 must be positive" in capsys.readouterr().err


def test_cli_shorthand_models_go_to_the_api_base(tmp_path, upstream):
    server = ServerProcess(tmp_path, {}, args=["--api-base", upstream.base_url, "--api-key", CLIENT_KEY])
    try:
        server.wait_ready()
        body = {"model": "root-model:sub-model", "messages": [{"role": "user", "content": "[plain] Hi"}]}
        response = httpx.post(server.base_url + "/chat/completions", json=body, headers=AUTH, timeout=60)
        assert response.status_code == 200, response.text
        assert set(response.json()["rlm"]["usage_by_model"]) == {"openai/root-model", "openai/sub-model"}
        assert httpx.post(server.base_url + "/chat/completions", json=body, timeout=60).status_code == 401
    finally:
        server.stop()
