"""The langchain-tests integration suite for ChatRLM: scripted root and sub models, the real local sandbox."""

from __future__ import annotations

from typing import Any

from langchain_tests.integration_tests import ChatModelIntegrationTests

from rlm_plugins.langchain import ChatRLM
from tests.unit_tests.langchain.scripted import ScriptedRoot, ScriptedSub


class TestChatRLMIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatRLM]:
        return ChatRLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"root": ScriptedRoot(), "sub": ScriptedSub(), "sandbox": "local", "max_iterations": 6}

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True
