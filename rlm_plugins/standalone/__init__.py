"""Standalone use over litellm: the root chat model and the sub-model that `llm_query` calls.

Importing this package does not import litellm; building a model does, and says how to install it when it is missing.
"""

from rlm_plugins.standalone.models import LiteLLMChat, LiteLLMSubModel

__all__ = ["LiteLLMChat", "LiteLLMSubModel"]
