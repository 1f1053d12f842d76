"""Recursive Language Models for DSPy, LangChain and standalone use."""

import os

# litellm fetches its model cost map from the network at import (10 s of retries offline); use its bundled copy
# unless the user chose otherwise (LITELLM_LOCAL_MODEL_COST_MAP=False before importing rlm_plugins).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rlm_plugins._version import __version__
from rlm_plugins.agent import RLMAgent, create_enforced_agent
from rlm_plugins.core.logger import RLMLogger
from rlm_plugins.core.result import RLMResult
from rlm_plugins.errors import RLMError
from rlm_plugins.standalone.rlm import RLM

__all__ = ["RLM", "RLMAgent", "RLMError", "RLMLogger", "RLMResult", "__version__", "create_enforced_agent"]
