"""Model transports: a lean HTTP client (OpenAI-compatible servers), the `openai` SDK, the `anthropic` SDK or
litellm per model string, with pooled clients, retries, process-wide concurrency and rate limits, and one way of
reporting usage and cost."""

from rlm_plugins.models.base import Call, Reply, Transport
from rlm_plugins.models.chat import ChatModel, ChatSubModel
from rlm_plugins.models.limits import Gate, RateLimiter, shared_limits
from rlm_plugins.models.pricing import context_window, price
from rlm_plugins.models.retry import RetryPolicy
from rlm_plugins.models.select import choose_transport, transport_name

__all__ = [
    "Call",
    "ChatModel",
    "ChatSubModel",
    "Gate",
    "RateLimiter",
    "Reply",
    "RetryPolicy",
    "Transport",
    "choose_transport",
    "context_window",
    "price",
    "shared_limits",
    "transport_name",
]
