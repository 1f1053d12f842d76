"""LangChain integration: ChatRLM, a chat model that runs an RLM."""
