"""The standalone RLM over the real litellm client and a scripted OpenAI-compatible server on loopback.

The root and sub-models are scripted, but the engine does real work: real code in the real sandbox over the
real context, real HTTP sub-calls."""

from __future__ import annotations

import json
import re

import pytest

from rlm_plugins import RLM, RLMLogger
from rlm_plugins.errors import ConfigurationError, ModelError
from tests.fixtures_openai import standalone_rlm

NEEDLE = re.compile(r"magic number is (\d+)")


def haystack(lines=20_000, where=12_345, number=4242):
    body = [f"line {i}: filler text" for i in range(lines)]
    body[where] = f"line {where}: the magic number is {number}"
    return "\n".join(body)


ROOT_REPLIES = [
    "```repl\nlines = context.splitlines()\nprint(len(lines))\n```",
    "```repl\nsize = len(lines) // 8 + 1\n"
    "chunks = ['\\n'.join(lines[i:i + size]) for i in range(0, len(lines), size)]\n"
    "answers = llm_query_batched(['Find the magic number or say NONE.\\n' + c for c in chunks])\n"
    "found = [a for a in answers if a != 'NONE']\nprint(found)\n```",
    "```repl\nFINAL(found[0])\n```",
]


def scripted(request):
    """Root requests carry a system prompt; sub requests are a single user message with a chunk."""
    messages = request["messages"]
    if messages[0]["role"] == "system":
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if "no more code will run" in messages[-1]["content"]:
            return "extracted"
        return ROOT_REPLIES[min(turn, len(ROOT_REPLIES) - 1)]
    match = NEEDLE.search(messages[-1]["content"])
    return match.group(1) if match else "NONE"


def read_log(logger):
    with open(logger.log_file_path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture
def server(scripted_openai):
    return scripted_openai(scripted)


def test_completion_finds_the_needle_over_http(server):
    result = standalone_rlm(server).completion(haystack(), root_prompt="What is the magic number?")
    assert result.response == "4242"
    assert result.finish_reason == "final"
    assert result.usage["openai/root-model"].calls == 3
    assert result.usage["openai/sub-model"].calls == 8
    assert result.usage["openai/sub-model"].input_tokens > 0
    roots = [r for r in server.requests if r["messages"][0]["role"] == "system"]
    assert all("line 12345: the magic number" not in json.dumps(r) for r in roots)


async def test_acompletion_finds_the_needle_over_http(server):
    result = await standalone_rlm(server).acompletion(haystack(), root_prompt="What is the magic number?")
    assert result.response == "4242"
    assert result.usage["openai/sub-model"].calls == 8


def test_official_constructor_runs_unchanged(server):
    rlm = RLM(
        backend="openai",
        backend_kwargs={"model_name": "root-model", "base_url": server.base_url, "api_key": "sk-test"},
        environment="local",
        max_iterations=5,
    )
    result = rlm.completion(haystack(), root_prompt="magic number?")
    assert result.response == "4242"
    summaries = result.usage_summary.to_dict()["model_usage_summaries"]
    assert summaries["root-model"]["total_calls"] == 3 + 8  # keyed as rlms keys it; root and sub are one model
    assert result.usage_summary.total_input_tokens > 0


def test_unknown_backend_says_what_to_use():
    with pytest.raises(ConfigurationError, match="backend='nope' is not supported"):
        RLM(backend="nope", backend_kwargs={"model_name": "x"})


def test_logger_writes_the_official_schema(server, tmp_path):
    logger = RLMLogger(tmp_path)
    standalone_rlm(server, logger=logger).completion(haystack(), root_prompt="What is the magic number?")
    lines = read_log(logger)
    meta, iterations = lines[0], lines[1:]
    assert meta["type"] == "metadata"
    for key in ("root_model", "max_depth", "max_iterations", "backend", "backend_kwargs", "environment_type"):
        assert key in meta
    assert "api_key" not in json.dumps(meta)
    assert [it["iteration"] for it in iterations] == [1, 2, 3]
    for it in iterations:
        assert set(it) >= {"type", "iteration", "timestamp", "prompt", "response", "code_blocks", "final_answer"}
        assert isinstance(it["prompt"], list) and it["prompt"][0]["role"] == "system"
        for block in it["code_blocks"]:
            assert set(block) == {"code", "result"}
            assert set(block["result"]) >= {"stdout", "stderr", "locals", "execution_time", "rlm_calls"}
    calls = iterations[1]["code_blocks"][0]["result"]["rlm_calls"]
    assert len(calls) == 8 and {"prompt", "response", "usage_summary", "execution_time"} <= set(calls[0])
    assert iterations[-1]["final_answer"] == "4242"


def test_official_types_read_our_iterations(server, tmp_path):
    """The official package's own dataclasses accept our log lines field by field."""
    types = pytest.importorskip("rlm.core.types")
    logger = RLMLogger(tmp_path)
    standalone_rlm(server, logger=logger).completion(haystack(), root_prompt="magic number?")
    entry = read_log(logger)[2]
    block = entry["code_blocks"][0]
    result = types.REPLResult(
        stdout=block["result"]["stdout"],
        stderr=block["result"]["stderr"],
        locals=block["result"]["locals"],
        execution_time=block["result"]["execution_time"],
        rlm_calls=[types.RLMChatCompletion.from_dict(c) for c in block["result"]["rlm_calls"]],
    )
    assert len(result.rlm_calls) == 8


def test_unreachable_root_model_is_a_model_error():
    rlm = RLM(
        model="openai/x", api_base="http://127.0.0.1:9/v1", api_key="k", model_kwargs={"num_retries": 0, "timeout": 5}
    )
    with pytest.raises(ModelError) as info:
        rlm.completion("ctx", root_prompt="q")
    assert info.value.partial is not None


def _unused_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cassette_rlm(vcr, scripted_openai):
    """Replaying: a closed port, so only the cassette answers. Recording: the scripted server."""
    base = None if vcr.write_protected else scripted_openai(scripted).base_url
    return RLM(
        model="openai/root-model",
        sub_model="openai/sub-model",
        api_base=base or f"http://127.0.0.1:{_unused_port()}/v1",
        api_key="sk-test",
        model_kwargs={"num_retries": 0, "temperature": 0.0},
        max_concurrency=1,
    )


@pytest.mark.vcr
def test_full_run_replays_from_cassette(vcr, scripted_openai):
    result = _cassette_rlm(vcr, scripted_openai).completion(haystack(), root_prompt="What is the magic number?")
    assert result.response == "4242"
    assert result.usage["openai/sub-model"].calls == 8
    if vcr.write_protected:
        assert vcr.all_played


@pytest.mark.vcr
async def test_full_run_replays_from_cassette_async(vcr, scripted_openai):
    rlm = _cassette_rlm(vcr, scripted_openai)
    result = await rlm.acompletion(haystack(), root_prompt="What is the magic number?")
    assert result.response == "4242"
    if vcr.write_protected:
        assert vcr.all_played
