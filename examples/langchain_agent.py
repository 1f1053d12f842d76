"""ChatRLM as the model of a LangChain agent: the root model calls a tool from its REPL code.

    python examples/langchain_agent.py --root openai:gpt-4o --sub openai:gpt-4o-mini
    python examples/langchain_agent.py --offline   # scripted inner models, no API key: shows the plumbing only

The agent gets a long log and a question that needs a tool. Inside the RLM, `exchange_rate(...)` is a REPL
function: calling it pauses the run and ChatRLM answers the agent with a tool call; the agent runs the tool and
sends the ToolMessage back, and the same REPL session (variables included) resumes with the result.
"""

from __future__ import annotations

import argparse

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeListChatModel, FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from rlm_plugins.langchain import ChatRLM


@tool
def exchange_rate(currency: str) -> float:
    """How many US dollars one unit of `currency` is worth."""
    return {"EUR": 1.08, "GBP": 1.27, "JPY": 0.0067}.get(currency.upper(), 1.0)


def sample_log() -> str:
    return "\n".join(f"2025-01-{1 + i % 28:02d} payment {i}: {(i * 13) % 500} EUR" for i in range(100_000))


def offline_models() -> tuple[FakeMessagesListChatModel, FakeListChatModel]:
    code = [
        "payments = [line for line in context.splitlines() if ' payment ' in line]\n"
        "total_eur = sum(int(line.split(': ')[1].split()[0]) for line in payments)\nprint(len(payments), total_eur)",
        "exchange_rate('EUR')",
        "rate = float(list(tool_results.values())[-1])\nFINAL(f'{total_eur} EUR = {total_eur * rate:,.2f} USD')",
    ]
    root = FakeMessagesListChatModel(responses=[AIMessage(f"```repl\n{c}\n```") for c in code])
    return root, FakeListChatModel(responses=["ok"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="openai:gpt-4o")
    parser.add_argument("--sub", default="openai:gpt-4o-mini")
    parser.add_argument("--offline", action="store_true")
    args = parser.parse_args()
    root, sub = offline_models() if args.offline else (args.root, args.sub)
    agent = create_agent(ChatRLM(root=root, sub=sub, max_iterations=12), [exchange_rate])
    question = sample_log() + "\n\nWhat is the total of these payments in US dollars?"
    result = agent.invoke({"messages": [("user", question)]})
    for message in result["messages"][1:]:
        print(f"{message.type}: {message.text or message.tool_calls}")


if __name__ == "__main__":
    main()
