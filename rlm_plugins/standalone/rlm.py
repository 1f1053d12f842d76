"""`RLM`: the standalone Recursive Language Model (models over the openai, anthropic or litellm transport), with the
official `rlms` package's call shape (see `rlm_plugins.standalone.clients` and `RLMChatCompletion`)."""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import os
import time
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
from rlm_plugins.core.ports import Policy, SubModel, Usage, as_completion
from rlm_plugins.core.prompts import FINAL_STYLES, system_prompt
from rlm_plugins.core.result import RLMResult
from rlm_plugins.core.session import DEFAULT_QUERY, Session
from rlm_plugins.errors import CancellationError, ConfigurationError
from rlm_plugins.models.chat import ChatModel, ChatSubModel
from rlm_plugins.repl.factory import sandbox_factory
from rlm_plugins.standalone._callbacks import OfficialCallbacks
from rlm_plugins.standalone._env import PersistentREPL
from rlm_plugins.standalone._official import (
    IGNORED,
    check_arguments,
    history_budget,
    sandbox_kind,
    sub_client_args,
    with_sampling,
)
from rlm_plugins.standalone.clients import (
    BackendClient,
    ClientSubModel,
    client_name,
    client_policy,
    get_client,
    model_name,
)
from rlm_plugins.standalone.completion import RLMChatCompletion
from rlm_plugins.standalone.limits import check_on_limit, limit_error

ANSWER_QUERY = (
    "The user's prompt is in the variable `context`. Read it in the REPL and do what it asks; answer by setting "
    'answer["content"] and then answer["ready"] = True.'
)


class RLM:
    """A Recursive Language Model: the prompt lives in a sandboxed REPL, the root model explores it with code.

    Models are "provider/name" strings ("openai/gpt-5-mini", "anthropic/claude-...", "openrouter/...", any
    OpenAI-compatible server with `api_base=`), each called through its fastest transport (`ChatModel`: lean
    HTTP for an OpenAI-compatible `api_base`, the openai or anthropic SDK, else litellm); `model_kwargs` /
    `sub_model_kwargs` take `ChatModel` options too
    (max_retries, max_concurrency, rpm, tpm, transport, ...).

    Every argument of the official `rlms` 0.1.3 `RLM` is accepted and honoured, so code written for it runs
    unchanged: `backend` / `backend_kwargs` (the clients come from `clients.get_client`), `other_backends` /
    `other_backend_kwargs` (the sub-model), `environment` / `environment_kwargs`, `depth`, `max_budget`,
    `max_timeout`, `max_errors`, `custom_system_prompt`, `custom_tools`, `custom_sub_tools`, `compaction`,
    `compaction_threshold_pct`, `max_concurrent_subcalls`, the `on_subcall_*` / `on_iteration_*` callbacks,
    `sampling_args`, `sub_sampling_args` and `user_prologue` (`orchestrator` is accepted and has no effect).
    `completion` returns an `RLMChatCompletion` (the official result's fields plus ours). An unknown argument
    raises `UnknownArgumentError` (a `TypeError`) naming the nearest valid one.

    Args:
        model: the root model.
        sub_model: what `llm_query` calls; defaults to `model`.
        sandbox: "local" (isolated subprocess), "inprocess" (no isolation), "docker", "e2b", or a sandbox factory.
        max_iterations: root-model turns per run.
        max_llm_calls: sub-calls for the whole run tree.
        max_depth: 1 means rlm_query behaves as llm_query; 2 allows one level of child RLMs.
        max_time: seconds for the whole run tree (`max_timeout` is its official name).
        max_tokens: tokens for the whole run tree, where providers report them.
        max_cost: dollars for the whole run tree, where prices are known (`max_budget` is its official name).
        max_errors: stop a run after this many consecutive turns whose code failed (finish_reason "max_errors",
            with the extract step's answer); None never stops for errors.
        api_base: endpoint for both models; `model_kwargs` / `sub_model_kwargs` override per model.
        api_key: key for both models.
        memo: answer identical sub-prompts to the same sub-model once per run tree (a duplicate in flight waits
            for the first); pass False when repeated sampling of one prompt is the point.
        cache: a directory where sub-call answers persist across runs and processes (implies `memo`).
        max_history_tokens: the root prompt's history budget; by default half the root model's context window
            where litellm's price table knows it (at most 32,000 tokens), else about 10,000 tokens.
        compaction: None (default) compacts the oldest turns past `max_history_tokens`; True compacts past
            `compaction_threshold_pct` of the model's context window (where it is known); False never compacts.
        tools: host functions the REPL code may call by name (`custom_tools` is its official name).
        custom_sub_tools: the tools of rlm_query children instead of `tools` ({} gives them none).
        custom_system_prompt: replaces our instructions; what the REPL holds and its functions still follow it.
        final_style: what the system prompt teaches to end a run: "final" (`FINAL(...)` / `FINAL_VAR(...)`) or
            "answer" (the official 0.1.3 `answer["content"] = ...; answer["ready"] = True`). The REPL takes both.
        refuse_premature_final: refuse a literal final answer typed before the model saw any output (see
            `Engine`). None: on with `model=`, off with the official call shape (`backend=`), whose users expect
            an answer in the first reply to end the run.
        on_limit: "raise": a run stopped by max_time, max_cost, max_tokens, max_errors or a cancel raises the
            official package's exception (`TimeoutExceededError`, ... in `rlm_plugins.errors`, each with
            `partial_answer` and the whole `result`); "return": it returns with `finish_reason` naming the limit.
            None: "raise" with the official call shape (`backend=`), "return" with `model=`.
        sampling_args: call parameters of the root model (temperature, top_p, max_tokens, seed, ...).
        sub_sampling_args: call parameters of the sub-model (with `backend=` and no `other_backends`, the sub
            model is then a second client of the root backend, as in the official package).
        logger: an `RLMLogger`; its JSONL files open in the official trajectory visualizer, and
            `RLMChatCompletion.metadata` is its trajectory.
        verbose: print live progress to stderr.
        persistent: keep one REPL across `completion` calls (a `Session`): turn n's prompt is `context_<n>`,
            turn n's messages become `history_<n>` when it ends, variables stay. `close()` (or `with RLM(...)`)
            releases the REPL.
        session_aliases: with `persistent=True`, what `context` / `history` name: "newest" (this turn's input,
            the previous turn's messages) or "first" (`context_0`, `history_0`). None: "newest" with `model=`,
            "first" with the official call shape (`backend=`), as the official package binds them.
        idle_timeout: with `persistent=True`, release the sandbox after this many idle seconds; a later
            `completion` then raises `SessionExpiredError`.
        session_budget: with `persistent=True`, "turn" (default: each call gets the full budget) or "session"
            (sub-calls, tokens, cost and time count over all calls).
        mcp_servers: MCP servers (URLs, command lines or `{"command", "args"}` dicts) whose tools become REPL
            functions; they are started here and stopped by `close()`.

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
        max_errors: int | None = None,
        max_output_chars: int = 10_000,
        max_concurrency: int = 16,
        exec_timeout: float = 300.0,
        memo: bool = True,
        cache: str | os.PathLike[str] | None = None,
        max_history_tokens: int | None = None,
        compaction: bool | None = None,
        compaction_threshold_pct: float = 0.85,
        api_base: str | None = None,
        api_key: str | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
        sub_model_kwargs: Mapping[str, Any] | None = None,
        sampling_args: Mapping[str, Any] | None = None,
        sub_sampling_args: Mapping[str, Any] | None = None,
        sandbox_options: Mapping[str, Any] | None = None,
        tools: Mapping[str, Callable[..., Any]] | None = None,
        custom_tools: Mapping[str, Callable[..., Any]] | None = None,
        custom_sub_tools: Mapping[str, Callable[..., Any]] | None = None,
        custom_system_prompt: str | None = None,
        final_style: Literal["final", "answer"] = "final",
        refuse_premature_final: bool | None = None,
        on_limit: Literal["raise", "return"] | None = None,
        logger: RLMLogger | None = None,
        verbose: bool = False,
        persistent: bool = False,
        session_aliases: Literal["newest", "first"] | None = None,
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
        depth: int = 0,
        max_budget: float | None = None,
        max_timeout: float | None = None,
        max_concurrent_subcalls: int | None = None,
        on_subcall_start: Callable[[int, str, str], Any] | None = None,
        on_subcall_complete: Callable[[int, str, float, str | None], Any] | None = None,
        on_iteration_start: Callable[[int, int], Any] | None = None,
        on_iteration_complete: Callable[[int, int, float], Any] | None = None,
        user_prologue: str | None = None,
        mcp_servers: Sequence[str | Mapping[str, Any]] | None = None,
        **unknown: Any,
    ) -> None:
        ignored = sorted(name for name in IGNORED if unknown.pop(name, None) is not None)
        check_arguments(unknown, [name for name in inspect.signature(RLM.__init__).parameters if name != "unknown"])
        if ignored:
            warnings.warn(f"RLM(): {ignored} have no effect here and were ignored", UserWarning, stacklevel=2)
        if final_style not in FINAL_STYLES:
            raise ConfigurationError(
                f"final_style={final_style!r}: pass 'final' (FINAL(...)) or 'answer' (answer dict)"
            )
        if depth < 0:
            raise ConfigurationError(f"depth={depth!r} must be >= 0")
        official = backend is not None or backend_kwargs is not None
        backend = backend or ("openai" if official else None)
        self.official = official
        self.on_limit = check_on_limit(on_limit, official)
        self.final_style = final_style
        self.user_prologue = user_prologue
        self.depth = depth
        shared = {k: v for k, v in {"api_base": api_base, "api_key": api_key}.items() if v is not None}
        root_kwargs = {**shared, **dict(model_kwargs or {}), **dict(sampling_args or {})}
        sub_kwargs = {**shared, **dict(sub_model_kwargs or {})}
        sub_backend = sub_client_args(backend, backend_kwargs, other_backends, other_backend_kwargs, sub_sampling_args)
        if sub_backend is None:
            sub_kwargs.update(sub_sampling_args or {})
        if environment is not None:
            sandbox = sandbox_kind(environment, persistent)
            sandbox_options = {**dict(environment_kwargs or {}), **dict(sandbox_options or {})}
        instructions = functools.partial(system_prompt, final_style=final_style, custom=custom_system_prompt)

        def chat_policy(complete: Any, acomplete: Any, name: str, chat_model: str) -> ChatPolicy:
            budget = history_budget(chat_model, max_history_tokens, compaction, compaction_threshold_pct)
            return ChatPolicy(complete, acomplete, model=name, max_history_tokens=budget, instructions=instructions)

        if backend is not None:
            bk = with_sampling(backend_kwargs, sampling_args)
            self.client = get_client(backend, bk)
            model = client_name(self.client, bk)
            root_chat = self.client.chat.model if isinstance(self.client, BackendClient) else model
            if policy is None:
                complete, acomplete = client_policy(self.client, model)
                policy = chat_policy(complete, acomplete, model, root_chat)
            if sub_model is None and sub_backend is None:
                sub_model = ClientSubModel(self.client, model)
        if sub_backend is not None:
            sub_client = get_client(*sub_backend)
            sub_model = ClientSubModel(sub_client, client_name(sub_client, sub_backend[1]))
        if policy is None:
            if not model:
                raise ConfigurationError("pass model='provider/model' (e.g. 'openai/gpt-5-mini') or a policy")
            chat = ChatModel(model, **root_kwargs)
            policy = chat_policy(chat, chat.acall, model, model)
            self.client = chat
        elif backend is None:
            self.client = None
            model = str(getattr(policy, "model", None) or model or "root")
        self.model = model
        self.root_model = model_name(backend_kwargs) if official else model
        if sub_model is None:
            sub_model = model
        if isinstance(sub_model, str):
            sub_model = ChatSubModel(ChatModel(sub_model, **{**root_kwargs, **sub_kwargs}))
        self.sub_model = sub_model
        self.memo = MemoSubModel(sub_model, directory=cache) if memo or cache is not None else None
        self.logger = logger
        observers = list(observers or [])
        if logger is not None:
            logger.set_metadata(
                root_model=self.root_model,
                max_depth=max_depth,
                max_iterations=max_iterations,
                backend=backend or "litellm",
                backend_kwargs={k: v for k, v in (backend_kwargs or root_kwargs).items() if "key" not in k},
                environment_type=environment or (sandbox if isinstance(sandbox, str) else "custom"),
                other_backends=[sub_backend[0] if sub_backend else getattr(sub_model, "name", "sub")],
            )
            observers.append(logger)
        callbacks = OfficialCallbacks(
            self.model, on_subcall_start, on_subcall_complete, on_iteration_start, on_iteration_complete
        )
        if callbacks:
            observers.append(callbacks)
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
                max_depth=max(1, max_depth - depth),
                max_time=max_timeout if max_time is None else max_time,
                max_tokens=max_tokens,
                max_cost=max_budget if max_cost is None else max_cost,
                max_errors=max_errors,
            ),
            max_output_chars=max_output_chars,
            max_concurrency=max_concurrent_subcalls or max_concurrency,
            exec_timeout=exec_timeout,
            tools={**dict(custom_tools or {}), **dict(tools or {})},
            sub_tools=custom_sub_tools,
            observers=observers,
            refuse_premature_final=not official if refuse_premature_final is None else refuse_premature_final,
        )
        self.leaf = depth >= max_depth
        self.persistent = persistent
        aliases = session_aliases or ("first" if official else "newest")
        self.session = (
            Session(self.engine, idle_timeout=idle_timeout, budget=session_budget, aliases=aliases)
            if persistent
            else None
        )
        self._view: PersistentREPL | None = None

    def completion(self, prompt: Any, root_prompt: str | None = None) -> RLMChatCompletion:
        """Answer `prompt` (any size: str, list, dict, bytes or a pathlib.Path), which goes into the REPL as
        `context`; `root_prompt`, if given, is the question the root model sees. With `persistent=True` every
        call is one turn of the same REPL. At `depth >= max_depth` it is one plain call of the root model."""
        if self.leaf:
            return self._plain(prompt)
        try:
            if self.session is not None:
                result = self.session.completion(prompt, self._query(root_prompt))
            else:
                result = self._tree_engine().run(self._query(root_prompt), prompt)
        except KeyboardInterrupt:
            if self.on_limit == "raise":
                raise CancellationError(message="Execution cancelled by user (Ctrl+C)") from None
            raise
        return self._completion(result, prompt)

    async def acompletion(self, prompt: Any, root_prompt: str | None = None) -> RLMChatCompletion:
        """The async twin of `completion`."""
        if self.leaf:
            return await asyncio.to_thread(self._plain, prompt)
        if self.session is not None:
            result = await self.session.acompletion(prompt, self._query(root_prompt))
        else:
            result = await self._tree_engine().arun(self._query(root_prompt), prompt)
        return self._completion(result, prompt)

    @property
    def persistent_env(self) -> PersistentREPL | None:
        """With `persistent=True`, the REPL kept across calls (its `locals`, context and history counts); None
        before the first call, after `close()`, and without `persistent`."""
        sandbox = self.session.sandbox if self.session is not None else None
        if sandbox is None:
            self._view = None
        elif self._view is None or self._view.sandbox is not sandbox:
            self._view = PersistentREPL(self.session, sandbox)  # type: ignore[arg-type]
        return self._view

    _persistent_env = persistent_env
    """The official package's name of `persistent_env`."""

    def _query(self, root_prompt: str | None) -> str:
        query = root_prompt or (ANSWER_QUERY if self.final_style == "answer" else DEFAULT_QUERY)
        return f"{self.user_prologue}\n\n{query}" if self.user_prologue else query

    def _completion(self, result: RLMResult, prompt: Any) -> RLMChatCompletion:
        metadata = self.logger.get_trajectory() if self.logger is not None else None
        completion = RLMChatCompletion.of(result, root_model=self.root_model, prompt=prompt, metadata=metadata)
        error = limit_error(completion, self.engine.limits) if self.on_limit == "raise" else None
        if error is not None:
            raise error
        return completion

    def _plain(self, prompt: Any) -> RLMChatCompletion:
        """One call of the root model with `prompt` (the official package's behaviour at max depth)."""
        started = time.perf_counter()
        policy = self.engine.policy
        complete = getattr(policy, "complete", None)
        if complete is None:
            raise ConfigurationError("depth >= max_depth needs a chat root model (model= or backend=), not a policy")
        messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
        reply = as_completion(complete(messages), self.model)
        result = RLMResult(
            response=reply.text,
            answer=reply.text,
            finish_reason="final",
            steps=[],
            usage={reply.model or self.model: reply.usage or Usage(calls=1)},
            execution_time=time.perf_counter() - started,
        )
        return self._completion(result, prompt)

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
            self._view = None
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
