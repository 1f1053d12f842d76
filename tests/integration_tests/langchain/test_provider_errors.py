"""Provider errors through `ChatOpenAI` end a ChatRLM call as the `ModelError` family with the partial result, as a
litellm error does in the standalone RLM; a failed sub-call is an error string in its slot."""

from __future__ import annotations

import pytest
from langchain_openai import ChatOpenAI

from rlm_plugins.errors import ModelAuthenticationError, ModelError, ModelRateLimitError, ModelTimeoutError
from rlm_plugins.langchain import ChatRLM


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def client(server, name: str, timeout: float = 5.0) -> ChatOpenAI:
    return ChatOpenAI(model=name, base_url=server.base_url, api_key="sk-test", max_retries=0, timeout=timeout)


def root_then(fail):
    """The root's first turn runs code; its second request gets `fail`; sub-calls echo."""

    def reply(body):
        if body["model"] == "sub":
            return f"echo:{body['messages'][-1]['content']}"
        turn = sum(1 for m in body["messages"] if m["role"] == "assistant")
        return repl("x = 41\nprint('step one ran')") if turn == 0 else fail

    return reply


@pytest.mark.parametrize(
    ("fail", "error"),
    [
        ({"status": 429, "message": "Rate limit reached for requests"}, ModelRateLimitError),
        ({"status": 401, "message": "Incorrect API key provided"}, ModelAuthenticationError),
        ({"delay": 5.0, "content": "too late"}, ModelTimeoutError),
    ],
)
async def test_a_root_provider_error_keeps_the_partial_trajectory(scripted_openai, invoke_both, fail, error):
    server = scripted_openai(root_then(fail))
    rlm = ChatRLM(root=client(server, "root", timeout=1.0), sub=client(server, "sub"), sandbox="inprocess")
    with pytest.raises(error) as raised:
        await invoke_both(rlm, "What is in the context?")
    assert isinstance(raised.value, ModelError)
    partial = raised.value.partial
    assert partial is not None and partial.finish_reason == "error"
    assert partial.trajectory[0]["output"] == ["step one ran\n"]


async def test_a_sub_call_provider_error_is_an_error_string_in_its_slot(scripted_openai, invoke_both):
    def reply(body):
        if body["model"] == "sub":
            prompt = body["messages"][-1]["content"]
            return {"status": 429, "message": "Rate limit reached"} if prompt == "bad" else f"echo:{prompt}"
        return repl("r = llm_query_batched(['ok', 'bad'])\nFINAL(r[0] + ' | ' + r[1])")

    server = scripted_openai(reply)
    rlm = ChatRLM(root=client(server, "root"), sub=client(server, "sub"), sandbox="inprocess")
    result = await invoke_both(rlm, "q")
    good, bad = result.text.split(" | ")
    assert good == "echo:ok"
    assert bad.startswith("[Error] the sub-model call failed") and "rate limited" in bad
