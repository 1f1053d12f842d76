"""ChatRLM as the model of a LangChain agent (`create_agent`) with a tool, over scripted inner models."""

from __future__ import annotations

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage
from langchain_core.tools import tool

from rlm_plugins.langchain import ChatRLM
from tests.unit_tests.langchain.scripted import ScriptedSub, repl

calls: list[str] = []


@tool
def lookup_population(city: str) -> str:
    """Look up the population of a city."""
    calls.append(city)
    return {"Paris": "2.1 million", "Rome": "2.8 million"}.get(city, "unknown")


def agent_root() -> FakeMessagesListChatModel:
    """Looks at the long context, asks for a tool call, then answers from the tool result it got back."""
    return FakeMessagesListChatModel(
        responses=[
            AIMessage(repl("city = context.split('CITY=')[1].split()[0]\nprint(city)")),
            AIMessage(repl("lookup_population(city)")),
            AIMessage(repl("FINAL(f'{city} has {list(tool_results.values())[-1]} people')")),
        ]
    )


def check(result: dict) -> None:
    messages = result["messages"]
    assert calls[-1] == "Rome"
    tool_messages = [m for m in messages if isinstance(m, ToolMessage)]
    assert len(tool_messages) == 1 and tool_messages[0].content == "2.8 million"
    assert messages[-1].text == "Rome has 2.8 million people"
    assert isinstance(messages[1], AIMessage) and messages[1].tool_calls[0]["args"] == {"city": "Rome"}


def question() -> dict:
    return {"messages": [("user", "filler " * 3_000 + "CITY=Rome end. How many people live in the city?")]}


def test_create_agent_with_a_tool() -> None:
    model = ChatRLM(root=agent_root(), sub=ScriptedSub(), sandbox="local", context_threshold=5_000)
    check(create_agent(model, [lookup_population]).invoke(question()))


async def test_create_agent_with_a_tool_async() -> None:
    model = ChatRLM(root=agent_root(), sub=ScriptedSub(), sandbox="local", context_threshold=5_000)
    check(await create_agent(model, [lookup_population]).ainvoke(question()))


def test_agent_stream_mode_messages_gets_each_model_message_once() -> None:
    model = ChatRLM(root=agent_root(), sub=ScriptedSub(), sandbox="local", context_threshold=5_000)
    agent = create_agent(model, [lookup_population])
    streamed = [
        chunk for chunk, meta in agent.stream(question(), stream_mode="messages") if meta["langgraph_node"] == "model"
    ]
    assert all(isinstance(chunk, AIMessageChunk) for chunk in streamed)
    assert streamed[0].tool_call_chunks[0]["name"] == "lookup_population"
    assert "".join(chunk.text for chunk in streamed) == "Rome has 2.8 million people"


async def test_agent_astream_mode_messages_gets_each_model_message_once() -> None:
    model = ChatRLM(root=agent_root(), sub=ScriptedSub(), sandbox="local", context_threshold=5_000)
    agent = create_agent(model, [lookup_population])
    streamed = [
        c async for c, meta in agent.astream(question(), stream_mode="messages") if meta["langgraph_node"] == "model"
    ]
    assert all(isinstance(chunk, AIMessageChunk) for chunk in streamed)
    assert "".join(chunk.text for chunk in streamed) == "Rome has 2.8 million people"
