"""One process of a LangGraph app with a persistent checkpointer: it runs one turn of a thread and exits.

`python -m tests.integration_tests.langchain.langgraph_process SPEC` with SPEC a JSON object: `db` (the SQLite file of
the checkpointer and, without `redis`, of the LangGraph store that keeps the sessions), `redis` (a Redis session
store's URL, optional), `sandbox` and `sandbox_options`, `thread`, `question`, `code`
(what the scripted root writes) and `mode` ("sync" or "async"). It prints the answer's text and
`response_metadata["rlm"]["session"]` as one JSON line. Two runs are a process restart between two turns.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.store.sqlite import SqliteStore
from langgraph.store.sqlite.aio import AsyncSqliteStore

from rlm_plugins.core.store import RedisSessionStore
from rlm_plugins.langchain import ChatRLM, LangGraphSessionStore
from tests.unit_tests.langchain.scripted import ScriptedSub, repl
from tests.unit_tests.langchain.test_threads import graph


def build(spec: dict[str, Any], checkpointer: Any) -> Any:
    root = FakeMessagesListChatModel(responses=[AIMessage(repl(spec["code"]))])
    store = RedisSessionStore(spec["redis"]) if "redis" in spec else LangGraphSessionStore(spec["graph_store"])
    model = ChatRLM(
        root=root,
        sub=ScriptedSub(),
        sandbox=spec["sandbox"],
        sandbox_options=spec["sandbox_options"],
        session_store=store,
    )
    return graph(model, checkpointer)


def report(state: dict) -> str:
    answer = state["messages"][-1]
    return json.dumps({"text": answer.text, "session": answer.response_metadata["rlm"]["session"]})


def run(spec: dict[str, Any]) -> str:
    config = {"configurable": {"thread_id": spec["thread"]}}
    with SqliteSaver.from_conn_string(spec["db"]) as saver, SqliteStore.from_conn_string(spec["db"]) as store:
        store.setup()
        app = build({**spec, "graph_store": store}, saver)
        return report(app.invoke({"messages": [("user", spec["question"])]}, config))


async def arun(spec: dict[str, Any]) -> str:
    config = {"configurable": {"thread_id": spec["thread"]}}
    async with (
        AsyncSqliteSaver.from_conn_string(spec["db"]) as saver,
        AsyncSqliteStore.from_conn_string(spec["db"]) as store,
    ):
        await store.setup()
        app = build({**spec, "graph_store": store}, saver)
        return report(await app.ainvoke({"messages": [("user", spec["question"])]}, config))


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(run(spec) if spec["mode"] == "sync" else asyncio.run(arun(spec)))
