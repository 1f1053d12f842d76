"""ChatRLM over the real `ChatOpenAI` client (root and sub) talking to a scripted OpenAI-compatible server.

Recording (`pytest --record-mode=once`) starts the scripted server on loopback; replaying (the default) points
the clients at a closed port with the network blocked, so only the cassette in `cassettes/langchain/` answers.
The root's prompts are deterministic, so vcr matches requests on their JSON bodies.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from pytest_socket import disable_socket, enable_socket

from rlm_plugins.langchain import ChatRLM
from tests.unit_tests.langchain.scripted import repl

DOC = "\n".join(f"line {i}: " + ("apple " if i % 7 == 0 else "pear ") * 20 for i in range(300))
QUESTION = "How many lines mention apples?"
APPLE_LINE = re.compile(r"^line \d+: apple", re.M)
ROOT_TURNS = [
    repl("chunks = [context[i:i + 8000] for i in range(0, len(context), 8000)]\nprint(len(chunks), len(context))"),
    repl("answers = llm_query_batched(['Count the lines with apple in:\\n' + c for c in chunks])\nprint(answers)"),
    repl("FINAL(str(sum(int(a.split(':')[1]) for a in answers)))"),
]


def scripted_reply(body: dict[str, Any]) -> str:
    """The root's turns (counted from its assistant messages) or the sub's count over its chunk."""
    messages = body["messages"]
    if messages[0]["role"] == "system" and "Recursive Language Model" in messages[0]["content"]:
        return ROOT_TURNS[sum(1 for m in messages if m["role"] == "assistant")]
    count = len(APPLE_LINE.findall(messages[-1]["content"]))
    return f"apple lines: {count}"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def base_url(vcr, scripted_openai) -> Iterator[str]:
    if not vcr.write_protected:
        yield scripted_openai(scripted_reply, models=("root-model", "sub-model")).base_url
        return
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    disable_socket(allow_unix_socket=True)
    try:
        yield url
    finally:
        enable_socket()


def model(base_url: str) -> ChatRLM:
    def client(name: str) -> ChatOpenAI:
        return ChatOpenAI(model=name, base_url=base_url, api_key="sk-test", temperature=0, max_retries=0)

    return ChatRLM(root=client("root-model"), sub=client("sub-model"), sandbox="local", context_threshold=5_000)


def check(result: Any, vcr: Any) -> None:
    expected = sum(1 for i in range(300) if i % 7 == 0)
    assert result.text == str(expected)
    by_model = result.response_metadata["usage_by_model"]
    assert by_model["root-model"]["calls"] == 3 and by_model["sub-model"]["calls"] == len(range(0, len(DOC), 8000))
    assert result.usage_metadata["input_tokens"] == sum(u["input_tokens"] for u in by_model.values()) > 0
    if vcr.write_protected:
        assert vcr.all_played


@pytest.mark.vcr
def test_chat_openai_root_and_sub_replay(vcr, base_url) -> None:
    check(model(base_url).invoke([HumanMessage(DOC), HumanMessage(QUESTION)]), vcr)


@pytest.mark.vcr
async def test_chat_openai_root_and_sub_replay_async(vcr, base_url) -> None:
    check(await model(base_url).ainvoke([HumanMessage(DOC), HumanMessage(QUESTION)]), vcr)
