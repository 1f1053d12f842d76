"""LangChain integration: ChatRLM, a chat model that runs an RLM."""

from rlm_plugins.errors import SessionExpiredError
from rlm_plugins.langchain.chat_models import ChatRLM
from rlm_plugins.langchain.graph_store import LangGraphSessionStore

__all__ = ["ChatRLM", "LangGraphSessionStore", "SessionExpiredError"]
