"""The agent's model ports: the root policy and sub-model from what the caller passed."""

from __future__ import annotations

from typing import Any

from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.ports import Policy, SubModel
from rlm_plugins.errors import ConfigurationError


def model_ports(model: Any, sub_model: Any, max_history_tokens: int | None) -> tuple[Policy | None, Any]:
    """The policy and sub-model for `RLM` when the caller passed functions or ports instead of model strings."""
    policy = None
    if not isinstance(model, str):
        if isinstance(model, Policy):
            policy = model
        elif callable(model):
            policy = ChatPolicy(model, model="root", max_history_tokens=max_history_tokens)
        else:
            raise ConfigurationError(f"model={model!r}: pass a model string, a Policy, or a function of messages")
        if sub_model is None:
            raise ConfigurationError("pass sub_model= (a model string, a SubModel or a function) with this model")
    if sub_model is not None and not isinstance(sub_model, (str, SubModel)):
        if not callable(sub_model):
            raise ConfigurationError(f"sub_model={sub_model!r}: pass a model string, a SubModel or a function")
        sub_model = CallableSubModel(sub_model, name=getattr(sub_model, "__name__", "sub"))
    return policy, sub_model
