"""Recursive Language Models for DSPy, LangChain and standalone use."""

from rlm_plugins._version import __version__
from rlm_plugins.errors import RLMError

__all__ = ["RLMError", "__version__"]
