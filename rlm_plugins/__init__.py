"""Recursive Language Models for DSPy, LangChain and standalone use."""

from rlm_plugins._version import __version__
from rlm_plugins.core.logger import RLMLogger
from rlm_plugins.core.result import RLMResult
from rlm_plugins.errors import RLMError
from rlm_plugins.standalone.rlm import RLM

__all__ = ["RLM", "RLMError", "RLMLogger", "RLMResult", "__version__"]
