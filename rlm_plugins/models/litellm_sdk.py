"""The litellm transport, for every provider without a dedicated SDK transport (Gemini, Bedrock, Azure, ...).

litellm is imported on first use, with its per-call overhead cut: the bundled cost table instead of the remote
one, no debug banners, no message logging, no callbacks registered by us, and its own retries off (`ChatModel`
retries for every transport).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.models.base import Call, Reply, openai_reply

INSTALL_HINT = 'pip install "rlm-plugins[standalone]"'


def import_litellm() -> ModuleType:
    """Import litellm configured for low overhead, or say how to install it."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError as exc:
        msg = f"LiteLLM models need litellm, which is not installed: {INSTALL_HINT}"
        raise ConfigurationError(msg).with_cause(exc) from None
    if not getattr(litellm, "_rlm_plugins_configured", False):
        litellm.suppress_debug_info = True
        litellm.turn_off_message_logging = True
        litellm.telemetry = False
        litellm._rlm_plugins_configured = True
    return litellm


class LiteLLMTransport:
    """Chat completions through `litellm.completion`; `model` keeps its "provider/" prefix for litellm."""

    name = "litellm"

    def __init__(self) -> None:
        self.litellm = import_litellm()

    def __repr__(self) -> str:
        return "LiteLLMTransport()"

    def key_env(self) -> str | None:
        return None

    def missing_keys(self, model: str) -> list[str]:
        """The env vars litellm says `model` needs and are not set."""
        try:
            return list(self.litellm.validate_environment(model=model).get("missing_keys") or [])
        except Exception:
            return []

    def _request(self, call: Call) -> dict[str, Any]:
        request: dict[str, Any] = {"model": call.model, "messages": call.messages, **call.params}
        request.setdefault("max_retries", 0)
        request.setdefault("num_retries", 0)
        for name, value in (("api_base", call.api_base), ("api_key", call.api_key), ("timeout", call.timeout)):
            if value is not None:
                request.setdefault(name, value)
        return request

    def complete(self, call: Call) -> Reply:
        """One `litellm.completion` call."""
        return openai_reply(self.litellm.completion(**self._request(call)))

    async def acomplete(self, call: Call) -> Reply:
        """One `litellm.acompletion` call."""
        return openai_reply(await self.litellm.acompletion(**self._request(call)))
