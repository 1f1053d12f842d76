"""The langchain-tests unit suite for ChatRLM, over scripted inner models."""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import ChatModelUnitTests

from rlm_plugins.langchain import ChatRLM
from tests.unit_tests.langchain.scripted import ScriptedRoot, ScriptedSub


class TestChatRLMUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatRLM]:
        return ChatRLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"root": ScriptedRoot(), "sub": ScriptedSub(), "sandbox": "local"}

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True
