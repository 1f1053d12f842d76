"""The agent's errors, under `rlm_plugins.errors.RLMError`."""

from __future__ import annotations

from rlm_plugins.errors import ConfigurationError, RLMError


class ContextInPromptError(RLMError, ValueError):
    """An enforced agent was asked to put a context larger than its threshold into a root prompt."""


class AgentStateError(RLMError):
    """A saved agent file cannot be read, or the REPL refused to save or restore its variables."""


class ToolSchemaError(ConfigurationError):
    """A function cannot be registered as a tool (bad name, not callable, or a name the REPL already uses)."""
