"""LangChain's `ChatOpenAI` (in a chain, and as an agent's model) and `litellm.completion` against the server."""

from __future__ import annotations

import pytest

from tests.integration_tests.server._scripts import SUB_REPLY
from tests.integration_tests.server.conftest import CLIENT_KEY


def chat_openai(server, **kw):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model="rlm", base_url=server.base_url, api_key=CLIENT_KEY, max_retries=0, **kw)


def test_chat_openai_in_a_chain(server):
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("user", "[plain] {question}")])
    chain = prompt | chat_openai(server) | StrOutputParser()
    assert chain.invoke({"question": "Hi"}) == SUB_REPLY + "!"


async def test_chat_openai_streams_in_a_chain(server):
    from langchain_core.output_parsers import StrOutputParser

    chain = chat_openai(server, streaming=True) | StrOutputParser()
    pieces = [piece async for piece in chain.astream("[plain] Hi")]
    assert "".join(pieces) == SUB_REPLY + "!"


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_chat_openai_as_an_agent_model(server, mode):
    from langchain.agents import create_agent

    agent = create_agent(chat_openai(server), tools=[get_weather])
    question = {"messages": [{"role": "user", "content": "[agent] What is the weather in Paris?"}]}
    state = agent.invoke(question) if mode == "sync" else await agent.ainvoke(question)
    kinds = [m.type for m in state["messages"]]
    assert kinds == ["human", "ai", "tool", "ai"]
    assert state["messages"][1].tool_calls[0]["args"] == {"city": "Paris"}
    assert state["messages"][-1].text == "It is sunny in Paris"


def test_litellm_completion_with_api_base(server):
    import litellm

    response = litellm.completion(
        model="openai/rlm",
        api_base=server.base_url,
        api_key=CLIENT_KEY,
        messages=[{"role": "user", "content": "[plain] Hi"}],
        num_retries=0,
    )
    assert response.choices[0].message.content == SUB_REPLY + "!"
    assert response.usage.total_tokens > 0


async def test_litellm_acompletion_streams(server):
    import litellm

    stream = await litellm.acompletion(
        model="openai/rlm",
        api_base=server.base_url,
        api_key=CLIENT_KEY,
        messages=[{"role": "user", "content": "[plain] Hi"}],
        stream=True,
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == SUB_REPLY + "!"
