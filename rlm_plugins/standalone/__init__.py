"""Standalone use: the root chat model and the sub-model that `llm_query` calls, over the fastest transport per
model (the `openai` SDK, the `anthropic` SDK, or litellm).

Importing this package imports no provider SDK; building a model does, and says how to install it when it is missing.
"""

from rlm_plugins.models.chat import ChatModel, ChatSubModel
from rlm_plugins.standalone.models import LiteLLMChat, LiteLLMSubModel

__all__ = ["ChatModel", "ChatSubModel", "LiteLLMChat", "LiteLLMSubModel"]
