"""An OpenAI-compatible server for RLMs (`rlm-plugins serve`; needs `pip install 'rlm-plugins[server]'`).

Any OpenAI client sends a conversation to `POST /v1/chat/completions`; long messages go into the REPL, the RLM
answers, and tools the client binds become REPL functions whose calls come back as ordinary `tool_calls` (the
same REPL resumes when the tool results arrive). Paused runs live in a `SessionStore` (Redis for replicas).
"""

try:
    import fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("rlm_plugins.server needs the server extra: pip install 'rlm-plugins[server]'") from exc

from rlm_plugins.server.app import create_app, serve
from rlm_plugins.server.config import ModelConfig, ServerConfig, load_config
from rlm_plugins.server.errors import APIError

__all__ = ["APIError", "ModelConfig", "ServerConfig", "create_app", "load_config", "serve"]
