"""ChatRLM in an LCEL chain over a document far too long for one prompt, with progress from custom events.

    python examples/langchain_chain.py --root openai:gpt-4o --sub openai:gpt-4o-mini [--file report.txt]
    python examples/langchain_chain.py --offline   # scripted inner models, no API key: shows the plumbing only

The chain is `prompt | ChatRLM | StrOutputParser()`. The document goes into the prompt like any other text;
ChatRLM moves it into the REPL because it is longer than `context_threshold`, and the root model works on it in
code. `astream_events` shows each step (root turn, code run, sub-call) as a custom event while the run goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib

from langchain_core.language_models.fake_chat_models import FakeListChatModel, FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from rlm_plugins.langchain import ChatRLM

PROMPT = ChatPromptTemplate.from_messages([("user", "{document}"), ("user", "{question}")])


def sample_document() -> str:
    lines = []
    for i in range(200_000):
        region = ("north", "south", "east", "west")[i % 4]
        lines.append(f"order {i}: region={region} amount={(i * 37) % 1000}")
    return "\n".join(lines)


def offline_models() -> tuple[FakeMessagesListChatModel, FakeListChatModel]:
    """A scripted root that really splits the document and fans out; a sub-model that answers "ok"."""
    code = [
        "print(len(context)); print(context[:200])",
        "chunks = [context[i:i + 200_000] for i in range(0, len(context), 200_000)]\n"
        "notes = llm_query_batched(['Summarise these orders:\\n' + c for c in chunks])\n"
        "print(len(notes))",
        "total = sum(int(line.rsplit('=', 1)[1]) for line in context.splitlines() if 'region=north' in line)\n"
        "FINAL(f'North sold {total} in {len(notes)} chunks')",
    ]
    root = FakeMessagesListChatModel(responses=[AIMessage(f"```repl\n{c}\n```") for c in code])
    return root, FakeListChatModel(responses=["ok"])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="openai:gpt-4o")
    parser.add_argument("--sub", default="openai:gpt-4o-mini")
    parser.add_argument("--file", type=pathlib.Path)
    parser.add_argument("--question", default="What is the total amount sold in the north region?")
    parser.add_argument("--offline", action="store_true")
    args = parser.parse_args()
    root, sub = offline_models() if args.offline else (args.root, args.sub)
    model = ChatRLM(root=root, sub=sub, max_iterations=12, max_llm_calls=200)
    chain = PROMPT | model | StrOutputParser()
    document = args.file.read_text() if args.file else sample_document()
    print(f"document: {len(document):,} characters")
    async for event in chain.astream_events({"document": document, "question": args.question}, version="v2"):
        if event["event"] == "on_custom_event" and event["name"] in ("rlm_root_step", "rlm_code_executed"):
            data = event["data"]
            code = data.get("code") or ""
            detail = data.get("stdout") or (code if isinstance(code, str) else " | ".join(code))
            print(f"[{event['name']}] turn {data.get('iteration')}: {detail[:100]!r}")
        elif event["event"] == "on_chain_end" and event["name"] == "RunnableSequence":
            print("answer:", event["data"]["output"])


if __name__ == "__main__":
    asyncio.run(main())
