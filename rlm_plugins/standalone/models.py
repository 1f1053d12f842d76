"""The standalone RLM's model ports, named after litellm for the code written against earlier versions.

`LiteLLMChat` and `LiteLLMSubModel` always call through litellm; `rlm_plugins.models.ChatModel` and `ChatSubModel`
(what `RLM` uses) pick the fastest transport per model string. Both report usage, cached tokens and cost alike and
retry the same way. litellm is imported when a model is built, not when this module is.
"""

from __future__ import annotations

from typing import Any

from rlm_plugins.models.chat import ChatModel, ChatSubModel


class LiteLLMChat(ChatModel):
    """A `ChatModel` that always calls `litellm.completion` (any provider litellm knows).

    Args:
        model: A litellm model string, "provider/model" (e.g. "openai/gpt-4o-mini").
        api_base: The endpoint to call instead of the provider's default.
        api_key: The key to send instead of the provider's env var.
        **options: `ChatModel` options (max_retries, timeout, rpm, ...) and litellm parameters for every call.

    Raises:
        ConfigurationError: `model` is empty or litellm is not installed.

    Examples:
        >>> chat = LiteLLMChat("gemini/gemini-2.5-flash", temperature=0.0)  # doctest: +SKIP
        >>> chat([{"role": "user", "content": "Say hi"}]).text  # doctest: +SKIP
        'Hi!'
    """

    def __init__(self, model: str, *, api_base: str | None = None, api_key: str | None = None, **options: Any) -> None:
        options.pop("transport", None)
        super().__init__(model, api_base=api_base, api_key=api_key, transport="litellm", **options)


class LiteLLMSubModel(ChatSubModel):
    """The SubModel port over litellm: `llm_query(prompt)` as one `LiteLLMChat` call.

    Examples:
        >>> sub = LiteLLMSubModel("gemini/gemini-2.5-flash", max_tokens=256)  # doctest: +SKIP
        >>> sub.query("Summarise: ...").text  # doctest: +SKIP
    """

    chat_class = LiteLLMChat
