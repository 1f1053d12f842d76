"""ChatRLM with `sandbox="e2b"`: the real E2B SDK in debug mode, over the fake envd on loopback."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from pytest_socket import enable_socket

from rlm_plugins.langchain import ChatRLM
from tests.unit_tests.langchain.scripted import ScriptedSub, repl

pytestmark = pytest.mark.filterwarnings("ignore:E2BSandbox uploads the driver")


@pytest.fixture(autouse=True)
def _loopback_allowed():
    """The SDK talks HTTP to the fake envd on 127.0.0.1; nothing else is reachable from this machine anyway."""
    enable_socket()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_long_message_is_answered_in_an_e2b_sandbox(mode, e2b_options, envd):
    uploads_before = len(envd.uploads)
    doc = "alpha beta gamma " * 2_000
    root = FakeMessagesListChatModel(
        responses=[
            AIMessage(repl("import os\nprint(len(context), os.getpid())")),
            AIMessage(repl("FINAL(str(context.count('beta')) + ' ' + llm_query('count')[:8])")),
        ]
    )
    rlm = ChatRLM(root=root, sub=ScriptedSub(), sandbox="e2b", sandbox_options=e2b_options, context_threshold=1_000)
    message = [HumanMessage(doc)]
    result = rlm.invoke(message) if mode == "sync" else await rlm.ainvoke(message)
    assert result.text == "2000 Scripted"
    assert result.response_metadata["rlm"]["iterations"] == 2
    assert len(envd.uploads) > uploads_before, "the context went to the fake envd"
