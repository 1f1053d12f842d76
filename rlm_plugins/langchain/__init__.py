"""LangChain integration: ChatRLM, a chat model that runs an RLM."""

from rlm_plugins.errors import SessionExpiredError
from rlm_plugins.langchain.chat_models import ChatRLM

__all__ = ["ChatRLM", "SessionExpiredError"]
