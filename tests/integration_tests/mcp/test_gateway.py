"""`rlm-plugins mcp` in a real subprocess, driven by the official MCP client over stdio and streamable HTTP.

`rlm_query` runs a real RLM in the gateway: its scripted root model is served over loopback HTTP, its code runs in
the local sandbox over the workspace file."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

REPO = Path(__file__).resolve().parents[3]
TOKEN = "test-token-123"
ROOT_REPLIES = [
    "```repl\nhits = [l for l in context.splitlines() if 'TODO' in l]\nprint(len(hits))\n```",
    "```repl\nFINAL(f'{len(hits)} TODOs')\n```",
]


def scripted(request):
    messages = request["messages"]
    turn = sum(1 for m in messages if m["role"] == "assistant")
    return ROOT_REPLIES[min(turn, len(ROOT_REPLIES) - 1)]


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    (root / "big.py").write_text(
        "".join(f"x = {i}  # TODO fix\n" if i % 100 == 0 else f"x = {i}\n" for i in range(5000))
    )
    (tmp_path / "outside.txt").write_text("secret\n")
    (root / "link").symlink_to(tmp_path / "outside.txt")
    return root


def gateway_argv(workspace, server, tmp_path, *extra):
    return [
        sys.executable, "-m", "rlm_plugins.cli", "mcp", "--root", str(workspace),
        "--model", "openai/root-model", "--api-base", server.base_url, "--api-key", "sk-test",
        "--log-dir", str(tmp_path / "logs"), *extra,
    ]  # fmt: skip


def env():
    return {**os.environ, "PYTHONPATH": str(REPO), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


async def exercise(session: ClientSession, tmp_path):
    """Every tool and refusal, through one client session; returns what the test asserts on."""
    tools = {t.name for t in (await session.list_tools()).tools}
    assert tools == {"open", "list", "read", "search", "rlm_query"}
    opened = (await session.call_tool("open", {"path_or_glob": "*.py"})).structured_content
    handle = opened["files"][0]["handle"]
    read = (await session.call_tool("read", {"handle": handle, "start_line": 1, "n_lines": 1000})).structured_content
    assert len(read["lines"]) == 200
    found = await session.call_tool("search", {"handle_or_dir": ".", "pattern": "TODO", "max_hits": 3})
    assert len(found.structured_content["hits"]) == 3
    for bad in ("../outside.txt", "link", "/etc/passwd", "/dev/zero"):
        refused = (await session.call_tool("open", {"path_or_glob": bad})).structured_content
        assert "error" in refused, bad
    progress = []

    async def on_progress(value, total, message):
        progress.append((value, message))

    answer = await session.call_tool(
        "rlm_query", {"question": "How many TODOs?", "handles": [handle]}, progress_callback=on_progress
    )
    result = answer.structured_content
    assert result["answer"] == "50 TODOs", result
    assert result["finish_reason"] == "final"
    assert result["log_id"].endswith(".jsonl") and (tmp_path / "logs" / result["log_id"]).exists()
    assert progress and "done: final" in progress[-1][1]
    log = (await session.read_resource("rlm://provenance")).contents[0].text
    tools_logged = [json.loads(line)["tool"] for line in log.splitlines()]
    assert tools_logged[:3] == ["open", "read", "search"] and tools_logged[-1] == "rlm_query"
    assert str(tmp_path) not in json.dumps([opened, read, found.structured_content])


async def test_gateway_over_stdio(scripted_openai, workspace, tmp_path):
    server = scripted_openai(scripted)
    argv = gateway_argv(workspace, server, tmp_path)
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env(), cwd=str(tmp_path))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await asyncio.wait_for(exercise(session, tmp_path), 120)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_gateway(scripted_openai, workspace, tmp_path):
    server = scripted_openai(scripted)
    port = free_port()
    argv = gateway_argv(workspace, server, tmp_path, "--http", "--port", str(port), "--token", TOKEN)
    proc = subprocess.Popen(argv, env=env(), cwd=str(tmp_path), stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.terminate()
    proc.wait(10)


@asynccontextmanager
async def http_session(url, token):
    import httpx2

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def test_gateway_over_http(http_gateway, tmp_path):
    async with http_session(http_gateway, TOKEN) as session:
        await asyncio.wait_for(exercise(session, tmp_path), 120)
    entries = [json.loads(line) for line in (tmp_path / "logs" / "provenance.jsonl").read_text().splitlines()]
    assert {e["client"] for e in entries} == {entries[0]["client"]} and entries[0]["client"].startswith("token:")
    assert TOKEN not in (tmp_path / "logs" / "provenance.jsonl").read_text()


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_http_refuses_missing_or_wrong_token(http_gateway, token):
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = httpx.post(http_gateway, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert reply.status_code == 401


def test_http_without_a_token_does_not_start(workspace):
    done = subprocess.run(
        [sys.executable, "-m", "rlm_plugins.cli", "mcp", "--http", "--root", str(workspace)],
        env={k: v for k, v in env().items() if k != "RLM_MCP_TOKEN"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--token" in done.stderr
