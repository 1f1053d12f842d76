"""ChatRLM in a multi-turn LangGraph chat: each conversation thread keeps its own REPL between turns.

    python examples/langgraph_threads.py --root openai:gpt-4o --sub openai:gpt-4o-mini
    python examples/langgraph_threads.py --offline   # scripted inner models, no API key: shows the plumbing only

Thread "alice" sends a long sales log and asks for the best month; the root model parses the log into a variable
in the REPL. Her follow-up question works on that variable: the checkpointer's `thread_id` selected the same REPL,
so the log is not parsed again. Thread "bob" asks the same follow-up and gets a REPL of his own, without
alice's variables. The run's progress streams in LangGraph's "custom" mode while it goes on.
"""

from __future__ import annotations

import argparse
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeListChatModel, FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.memory import MemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from rlm_plugins.langchain import ChatRLM


def sales_log() -> str:
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun"]
    return "\n".join(f"sale {i}: {months[i % 6]} {(i * 37) % 1000} EUR" for i in range(60_000))


def offline_models() -> tuple[FakeMessagesListChatModel, FakeListChatModel]:
    """The root's code for alice's two turns, then bob's turn (a real root model writes such code itself)."""
    code = [
        "sales = {}\nfor line in context.splitlines():\n"
        "    month, amount = line.split(': ')[1].split()[:2]\n"
        "    sales[month] = sales.get(month, 0) + int(amount)\nprint(sales)",
        "best = max(sales, key=sales.get)\nFINAL(f'{best}: {sales[best]:,} EUR')",
        "worst = min(sales, key=sales.get)\nFINAL(f'{worst}: {sales[worst]:,} EUR')",
        "FINAL('I have no sales figures in this conversation yet' if 'sales' not in globals() else 'unexpected')",
    ]
    root = FakeMessagesListChatModel(responses=[AIMessage(f"```repl\n{c}\n```") for c in code])
    return root, FakeListChatModel(responses=["ok"])


def chat_graph(model: ChatRLM) -> Any:
    def chat(state: MessagesState) -> dict:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", RunnableLambda(chat))
    builder.add_edge(START, "chat")
    return builder.compile(checkpointer=MemorySaver())


def ask(app: Any, thread: str, text: str) -> None:
    config = {"configurable": {"thread_id": thread}}
    for mode, item in app.stream({"messages": [("user", text)]}, config, stream_mode=["custom", "values"]):
        if mode == "custom":
            print(f"  [{thread}] progress: {item['name']}")
        else:
            answer = item["messages"][-1]
    session = answer.response_metadata["rlm"]["session"]
    print(f"{thread} (turn {session['turn']}, new session: {session['new_session']}): {answer.text}\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="openai:gpt-4o")
    parser.add_argument("--sub", default="openai:gpt-4o-mini")
    parser.add_argument("--offline", action="store_true")
    args = parser.parse_args()
    root, sub = offline_models() if args.offline else (args.root, args.sub)
    model = ChatRLM(root=root, sub=sub, max_iterations=12)
    app = chat_graph(model)
    ask(app, "alice", sales_log() + "\n\nWhich month had the highest sales?")
    ask(app, "alice", "And the lowest?")
    ask(app, "bob", "And the lowest?")
    for thread in ("alice", "bob"):
        model.close_thread(thread)


if __name__ == "__main__":
    main()
