"""Standalone use: the root chat model and the sub-model that `llm_query` calls, over the fastest transport per
model (the `openai` SDK, the `anthropic` SDK, or litellm), and the official `rlms` package's client and result
shapes (`get_client`, `BackendClient`, `RLMChatCompletion`).

Importing this package imports no provider SDK; building a model does, and says how to install it when it is missing.
"""

from rlm_plugins.models.chat import ChatModel, ChatSubModel
from rlm_plugins.standalone.clients import BackendClient, get_client
from rlm_plugins.standalone.completion import RLMChatCompletion
from rlm_plugins.standalone.models import LiteLLMChat, LiteLLMSubModel

__all__ = [
    "BackendClient",
    "ChatModel",
    "ChatSubModel",
    "LiteLLMChat",
    "LiteLLMSubModel",
    "RLMChatCompletion",
    "get_client",
]
