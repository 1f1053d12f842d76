"""The methods an example is answered with: the RLM, the RLM without sub-calls, and the plain model.

- `rlm`: the standalone RLM (root and sub model over litellm, or the offline oracle).
- `rlm-depth0`: the same REPL where every sub-call answers that sub-calls are off: what code alone achieves.
- `direct`: the whole input in one prompt; refused, without a call, when it exceeds the model's context window.
- `direct-truncated`: the head of the input that fits the window, in one prompt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rlm_plugins.core.budget import Limits
from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.engine import Engine
from rlm_plugins.core.logger import RLMLogger
from rlm_plugins.core.ports import Completion, Usage
from rlm_plugins.errors import ConfigurationError, RLMError
from rlm_plugins.evals.base import CHARS_PER_TOKEN, EvalExample
from rlm_plugins.evals.oracle import ORACLE, oracle_answer, oracle_policy
from rlm_plugins.repl.factory import sandbox_factory

METHODS = ("rlm", "rlm-depth0", "direct", "direct-truncated")
ORACLE_WINDOW = 32_000
"""The context window, in tokens, the offline direct reader pretends to have."""
DIRECT_TEMPLATE = "{question}\n\nThe text to answer from is between the markers.\n<<<TEXT\n{context}\nTEXT>>>"
NO_SUB_CALLS = (
    "[Error] Sub-calls are switched off in this run: llm_query answers nothing. Solve the task with code alone."
)
_RESERVED_TOKENS = 1_000
"""Room kept for the question and the answer when the input is truncated to fit."""


@dataclass
class Settings:
    """How to reach the models and run the sandbox; shared by every example of an evaluation."""

    model: str
    sub_model: str | None = None
    sandbox: str = "local"
    api_base: str | None = None
    api_key: str | None = None
    max_iterations: int = 20
    max_llm_calls: int = 100
    context_window: int | None = None
    log_dir: str | None = None
    system_role: str = "system"
    model_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """What one method made of one example."""

    answer: Any
    finish_reason: str
    usage: Usage
    seconds: float
    log_path: str | None = None
    error: str | None = None


def context_window(settings: Settings) -> int | None:
    """The root model's input window in tokens: --context-window, else what litellm knows, else None."""
    if settings.context_window:
        return settings.context_window
    if settings.model == ORACLE:
        return ORACLE_WINDOW
    try:
        import litellm

        info = litellm.get_model_info(settings.model)
    except Exception:
        return None
    return info.get("max_input_tokens") or info.get("max_tokens")


async def run_method(method: str, example: EvalExample, settings: Settings) -> Outcome:
    """Answer `example` with `method`; failures become an Outcome with `error` set, never an exception."""
    if method not in METHODS:
        raise ConfigurationError(f"unknown method {method!r}; use some of {list(METHODS)}")
    started = time.perf_counter()
    try:
        if method.startswith("rlm"):
            return await _rlm(example, settings, sub_calls=method == "rlm", started=started)
        return await _direct(example, settings, truncate=method == "direct-truncated", started=started)
    except RLMError as exc:
        return Outcome(None, "error", Usage(), time.perf_counter() - started, error=str(exc))


async def _rlm(example: EvalExample, settings: Settings, sub_calls: bool, started: float) -> Outcome:
    logger = RLMLogger(settings.log_dir, file_name=f"{example.id}_{'rlm' if sub_calls else 'rlm-depth0'}")
    logger.set_metadata(root_model=settings.model, sub_model=settings.sub_model or settings.model, task=example.task)
    policy, sub = _models(example, settings)
    if not sub_calls:
        sub = CallableSubModel(_no_sub_call, name="no-sub-calls")
    engine = Engine(
        policy,
        sub,
        sandbox_factory(settings.sandbox),
        limits=Limits(max_iterations=settings.max_iterations, max_llm_calls=settings.max_llm_calls),
        observers=[logger] if settings.log_dir else [],
    )
    result = await engine.arun(example.question, example.context)
    return Outcome(
        result.answer,
        result.finish_reason,
        result.total_usage,
        time.perf_counter() - started,
        logger.log_file_path,
        result.error,
    )


def _no_sub_call(prompt: str) -> Completion:
    return Completion(NO_SUB_CALLS, Usage(calls=0), "no-sub-calls")


def _models(example: EvalExample, settings: Settings) -> tuple[Any, Any]:
    if settings.model == ORACLE:
        policy = oracle_policy(example)
        policy.system_role = settings.system_role
    else:
        from rlm_plugins.standalone.models import LiteLLMChat

        chat = LiteLLMChat(settings.model, **_endpoint(settings))
        policy = ChatPolicy(chat, chat.acall, model=settings.model, system_role=settings.system_role)
    sub_name = settings.sub_model or settings.model
    if sub_name == ORACLE:
        return policy, CallableSubModel(oracle_answer, name="oracle-sub")
    from rlm_plugins.standalone.models import LiteLLMChat, LiteLLMSubModel

    return policy, LiteLLMSubModel(LiteLLMChat(sub_name, **_endpoint(settings)))


def _endpoint(settings: Settings) -> dict[str, Any]:
    options = {"api_base": settings.api_base, "api_key": settings.api_key}
    return {**{k: v for k, v in options.items() if v is not None}, **settings.model_kwargs}


async def _direct(example: EvalExample, settings: Settings, truncate: bool, started: float) -> Outcome:
    window = context_window(settings)
    context = example.context
    needed = (len(context) + len(example.question)) // CHARS_PER_TOKEN + _RESERVED_TOKENS
    if window is not None and needed > window:
        if not truncate:
            message = (
                f"not sent: the input is about {needed:,} tokens and {settings.model}'s context window is "
                f"{window:,} (as litellm knows it); use direct-truncated or rlm for inputs this long"
            )
            return Outcome(None, "refused_context", Usage(), time.perf_counter() - started, error=message)
        context = context[: max(window - _RESERVED_TOKENS, 0) * CHARS_PER_TOKEN - len(example.question)]
    prompt = DIRECT_TEMPLATE.format(question=example.question, context=context)
    messages = [{"role": "user", "content": prompt}]
    if settings.model == ORACLE:
        completion = await _read_directly(example, context)
    else:
        from rlm_plugins.standalone.models import LiteLLMChat

        completion = await LiteLLMChat(settings.model, **_endpoint(settings)).acall(messages)
    usage = completion.usage or Usage(calls=1)
    if settings.model == ORACLE:
        usage = Usage(1, len(prompt) // CHARS_PER_TOKEN, len(completion.text) // CHARS_PER_TOKEN, None)
    reason = "truncated" if context is not example.context else "answered"
    return Outcome(completion.text, reason, usage, time.perf_counter() - started)


async def _read_directly(example: EvalExample, context: str) -> Completion:
    """The offline direct model: a perfect reader of the text it was given (the oracle over that text)."""
    engine = Engine(
        oracle_policy(example),
        CallableSubModel(oracle_answer, name="oracle-sub"),
        sandbox_factory("inprocess"),
        limits=Limits(max_iterations=3),
    )
    result = await engine.arun(example.question, context)
    return Completion(result.response, None, ORACLE)
