"""`RLM`: the standalone Recursive Language Model (models over the openai, anthropic or litellm transport), with the
official `rlms` package's call shape."""

from __future__ import annotations

import asyncio
import copy
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from rlm_plugins.core.budget import Limits
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.console import ConsoleProgress
from rlm_plugins.core.engine import Engine
from rlm_plugins.core.events import Observer
from rlm_plugins.core.logger import RLMLogger
from rlm_plugins.core.memo import MemoSubModel
from rlm_plugins.core.ports import Policy, SubModel
from rlm_plugins.core.result import RLMResult
from rlm_plugins.core.session import DEFAULT_QUERY, Session
from rlm_plugins.errors import ConfigurationError
from rlm_plugins.models.chat import ChatModel, ChatSubModel
from rlm_plugins.models.pricing import context_window
from rlm_plugins.repl.factory import sandbox_factory

_BACKEND_PREFIX = {
    "openai": "openai",
    "anthropic": "anthropic",
    "openrouter": "openrouter",
    "portkey": "openai",
    "vllm": "hosted_vllm",
    "litellm": "",
    "azure_openai": "azure",
    "gemini": "gemini",
}
MAX_DEFAULT_HISTORY_TOKENS = 32_000
_ENVIRONMENTS = {"local": "local", "inprocess": "inprocess", "ipython": "inprocess", "e2b": "e2b", "docker": "docker"}
_IGNORED_OFFICIAL = ("compaction", "compaction_threshold_pct", "orchestrator", "user_prologue", "depth")


def _backend_model(backend: str, kwargs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """Translate an official `backend` + `backend_kwargs` pair into a litellm model string and litellm kwargs."""
    if backend not in _BACKEND_PREFIX:
        msg = (
            f"backend={backend!r} is not supported; use one of {sorted(_BACKEND_PREFIX)} or pass model='provider/model'"
        )
        raise ConfigurationError(msg)
    rest = dict(kwargs)
    name = rest.pop("model_name", None) or rest.pop("model", None)
    if not name:
        raise ConfigurationError("backend_kwargs needs 'model_name' (e.g. {'model_name': 'gpt-5-mini'})")
    if "base_url" in rest:
        rest["api_base"] = rest.pop("base_url")
    prefix = _BACKEND_PREFIX[backend]
    return (f"{prefix}/{name}" if prefix and not name.startswith(prefix + "/") else name), rest


class RLM:
    """A Recursive Language Model: the prompt lives in a sandboxed REPL, the root model explores it with code.

    Models are "provider/name" strings ("openai/gpt-5-mini", "anthropic/claude-...", "openrouter/...", any
    OpenAI-compatible server with `api_base=`), each called through its fastest transport (`ChatModel`: the
    openai or anthropic SDK, else litellm); `model_kwargs` / `sub_model_kwargs` take `ChatModel` options too
    (max_retries, max_concurrency, rpm, tpm, transport, ...). The official package's `backend`, `backend_kwargs`,
    `environment` and `environment_kwargs` are accepted too, so code written for `rlms` runs unchanged.

    Args:
        model: the root model.
        sub_model: what `llm_query` calls; defaults to `model`.
        sandbox: "local" (isolated subprocess), "inprocess" (no isolation), "e2b", or a sandbox factory.
        max_iterations: root-model turns per run.
        max_llm_calls: sub-calls for the whole run tree.
        max_depth: 1 means rlm_query behaves as llm_query; 2 allows one level of child RLMs.
        max_time: seconds for the whole run tree.
        max_tokens: tokens for the whole run tree, where providers report them.
        max_cost: dollars for the whole run tree, where litellm knows the prices.
        api_base: endpoint for both models; `model_kwargs` / `sub_model_kwargs` override per model.
        api_key: key for both models.
        memo: answer identical sub-prompts to the same sub-model once per run tree (a duplicate in flight waits
            for the first); pass False when repeated sampling of one prompt is the point.
        cache: a directory where sub-call answers persist across runs and processes (implies `memo`).
        max_history_tokens: the root prompt's history budget; by default half the root model's context window
            where litellm's price table knows it (at most 32,000 tokens), else about 10,000 tokens.
        tools: host functions the REPL code may call by name.
        mcp_servers: MCP servers (URLs, command lines or `{"command", "args"}` dicts) whose tools become REPL
            functions; they are started here and stopped by `close()`.
        logger: an `RLMLogger`; its JSONL files open in the official trajectory visualizer.
        verbose: print live progress to stderr.
        persistent: keep one REPL across `completion` calls (a `Session`): turn n's prompt is `context_<n>`
            (and `context`), earlier turns' messages are `history_<n>` (and `history`), variables stay. Call
            `close()` (or use `with RLM(...) as rlm:`) to release the sandbox.
        idle_timeout: with `persistent=True`, release the sandbox after this many idle seconds; a later
            `completion` then raises `SessionExpiredError`.
        session_budget: with `persistent=True`, "turn" (default: each call gets the full budget) or "session"
            (sub-calls, tokens, cost and time count over all calls).

    Examples:
        >>> rlm = RLM(model="openai/gpt-5-mini")  # doctest: +SKIP
        >>> rlm.completion(open("big.txt").read(), root_prompt="Who wrote the letter?").response  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | None = "openai/gpt-5-mini",
        sub_model: str | SubModel | None = None,
        sandbox: str | Callable[..., Any] = "local",
        *,
        max_iterations: int = 20,
        max_llm_calls: int | None = 100,
        max_depth: int = 1,
        max_time: float | None = None,
        max_tokens: int | None = None,
        max_cost: float | None = None,
        max_output_chars: int = 10_000,
        max_concurrency: int = 16,
        exec_timeout: float = 300.0,
        memo: bool = True,
        cache: str | os.PathLike[str] | None = None,
        max_history_tokens: int | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        sub_model_kwargs: Mapping[str, Any] | None = None,
        sandbox_options: Mapping[str, Any] | None = None,
        tools: Mapping[str, Callable[..., Any]] | None = None,
        logger: RLMLogger | None = None,
        verbose: bool = False,
        persistent: bool = False,
        idle_timeout: float | None = None,
        session_budget: Literal["turn", "session"] = "turn",
        policy: Policy | None = None,
        observers: list[Observer] | None = None,
        backend: str | None = None,
        backend_kwargs: Mapping[str, Any] | None = None,
        environment: str | None = None,
        environment_kwargs: Mapping[str, Any] | None = None,
        other_backends: list[str] | None = None,
        other_backend_kwargs: list[Mapping[str, Any]] | None = None,
        max_budget: float | None = None,
        max_timeout: float | None = None,
        custom_tools: Mapping[str, Callable[..., Any]] | None = None,
        max_concurrent_subcalls: int | None = None,
        mcp_servers: Sequence[str | Mapping[str, Any]] | None = None,
        **official: Any,
    ) -> None:
        unknown = sorted(set(official) - set(_IGNORED_OFFICIAL))
        if unknown:
            raise ConfigurationError(f"RLM() got unexpected arguments {unknown}")
        if official:
            warnings.warn(f"RLM(): {sorted(official)} have no effect here and were ignored", UserWarning, stacklevel=2)
        shared = {k: v for k, v in {"api_base": api_base, "api_key": api_key}.items() if v is not None}
        root_kwargs = {**shared, **dict(model_kwargs or {})}
        if backend is not None:
            model, extra = _backend_model(backend, backend_kwargs or {})
            root_kwargs = {**extra, **root_kwargs}
        sub_kwargs = {**shared, **dict(sub_model_kwargs or {})}
        if other_backends:
            sub_model, extra = _backend_model(other_backends[0], (other_backend_kwargs or [{}])[0])
            sub_kwargs = {**extra, **sub_kwargs}
        if environment is not None:
            if environment not in _ENVIRONMENTS:
                msg = f"environment={environment!r} is not supported; use one of {sorted(_ENVIRONMENTS)}"
                raise ConfigurationError(msg)
            sandbox = _ENVIRONMENTS[environment]
            sandbox_options = {**dict(environment_kwargs or {}), **dict(sandbox_options or {})}
        if policy is None:
            if not model:
                raise ConfigurationError("pass model='provider/model' (e.g. 'openai/gpt-5-mini') or a policy")
            chat = ChatModel(model, **root_kwargs)
            policy = ChatPolicy(
                chat, chat.acall, model=model, max_history_tokens=_history_budget(model, max_history_tokens)
            )
            self.model = model
        else:
            self.model = str(getattr(policy, "model", None) or model or "root")
        if sub_model is None:
            sub_model = model or self.model
        if isinstance(sub_model, str):
            sub_model = ChatSubModel(ChatModel(sub_model, **{**root_kwargs, **sub_kwargs}))
        self.sub_model = sub_model
        self.memo = MemoSubModel(sub_model, directory=cache) if memo or cache is not None else None
        self.logger = logger
        observers = list(observers or [])
        if logger is not None:
            logger.set_metadata(
                root_model=self.model,
                max_depth=max_depth,
                max_iterations=max_iterations,
                backend=backend or "litellm",
                backend_kwargs={k: v for k, v in root_kwargs.items() if k != "api_key"},
                other_backends=[getattr(sub_model, "name", "sub")],
            )
            observers.append(logger)
        if verbose:
            observers.append(ConsoleProgress())
        self._mcp = None
        if mcp_servers:
            from rlm_plugins.mcp.tools import McpToolset

            self._mcp = McpToolset(mcp_servers)
            tools = {**self._mcp.tools(), **dict(tools or {})}
        self.sandbox_kind = sandbox if isinstance(sandbox, str) else getattr(sandbox, "__name__", "custom")
        self.engine = Engine(
            policy,
            sub_model,
            sandbox_factory(sandbox, **dict(sandbox_options or {})),
            limits=Limits(
                max_iterations=max_iterations,
                max_llm_calls=max_llm_calls,
                max_depth=max_depth,
                max_time=max_timeout if max_time is None else max_time,
                max_tokens=max_tokens,
                max_cost=max_budget if max_cost is None else max_cost,
            ),
            max_output_chars=max_output_chars,
            max_concurrency=max_concurrent_subcalls or max_concurrency,
            exec_timeout=exec_timeout,
            tools={**dict(custom_tools or {}), **dict(tools or {})},
            observers=observers,
        )
        self.persistent = persistent
        self.session = Session(self.engine, idle_timeout=idle_timeout, budget=session_budget) if persistent else None

    def completion(self, prompt: Any, root_prompt: str | None = None) -> RLMResult:
        """Answer `prompt` (any size: str, list, dict, bytes or a pathlib.Path), which goes into the REPL as
        `context`; `root_prompt`, if given, is the question the root model sees. With `persistent=True` every
        call is one turn of the same REPL."""
        if self.session is not None:
            return self.session.completion(prompt, root_prompt)
        return self._tree_engine().run(root_prompt or DEFAULT_QUERY, prompt)

    async def acompletion(self, prompt: Any, root_prompt: str | None = None) -> RLMResult:
        """The async twin of `completion`."""
        if self.session is not None:
            return await self.session.acompletion(prompt, root_prompt)
        return await self._tree_engine().arun(root_prompt or DEFAULT_QUERY, prompt)

    def _tree_engine(self) -> Engine:
        """The engine for one run tree: with memoisation on, a shallow copy whose sub-model has a fresh memo."""
        if self.memo is None:
            return self.engine
        engine = copy.copy(self.engine)
        engine.sub_model = self.memo.scope()
        return engine

    def close(self) -> None:
        """Stop what this RLM started (its persistent REPL, its MCP servers); finished runs keep their results."""
        if self.session is not None:
            self.session.close()
        if self._mcp is not None:
            self._mcp.close()

    async def aclose(self) -> None:
        """The async twin of `close`."""
        await asyncio.to_thread(self.close)

    def __enter__(self) -> RLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RLM:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _history_budget(model: str, tokens: int | None) -> int | None:
    """The root history budget in tokens: as given, else half the model's known context window (capped)."""
    if tokens is not None:
        return tokens
    window = context_window(model)
    return None if window is None else min(window // 2, MAX_DEFAULT_HISTORY_TOKENS)
