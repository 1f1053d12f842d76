"""Scripted stand-ins for model providers that real client libraries can talk to over loopback."""

from tests.fakes.openai_server import ScriptedOpenAIServer, count_tokens

__all__ = ["ScriptedOpenAIServer", "count_tokens"]
