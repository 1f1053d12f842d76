"""`ChatRLM`: a LangChain chat model that answers by running a Recursive Language Model over its input."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from rlm_plugins.core.budget import Limits
from rlm_plugins.core.drivers import adrive, drive
from rlm_plugins.core.external_tools import check_tool_names, normalize_tool_choice
from rlm_plugins.core.snapshot import reconnect
from rlm_plugins.core.steps import Paused
from rlm_plugins.core.store import MemorySessionStore, SessionStore
from rlm_plugins.langchain._output import HANDOFF, STREAMING, Handoff, to_chunks, token_chunks
from rlm_plugins.langchain._ports import model_identity, model_label
from rlm_plugins.langchain._runtime import (
    Invocation,
    aload_results,
    load_results,
    new_invocation,
    pause_hook,
    pause_key,
    paused_data,
    resumable_ids,
    resumed_invocation,
    saved_pause,
    to_message,
    uncached_calls,
)
from rlm_plugins.langchain._structured import structured_runnable
from rlm_plugins.langchain._threads import (
    ThreadTurn,
    adopted,
    aend_turn,
    aopen_turn,
    close_thread,
    dropped_on_error,
    end_turn,
    on_thread,
    open_turn,
    paused_turn,
    v3_kwargs,
    with_session,
    with_turn,
)
from rlm_plugins.repl.factory import sandbox_class


class ChatRLM(BaseChatModel):
    """A chat model that answers by running a Recursive Language Model (RLM) over the conversation.

    Message contents longer than `context_threshold` characters never enter a prompt: they move into a Python
    REPL as `context` (one str, or a list of `{"role", "position", "content"}` documents when several are
    long). The `root` chat model sees the conversation with short placeholders, writes code that inspects
    `context` and calls the `sub` model on pieces of it (`llm_query`, `llm_query_batched`), and ends with
    `FINAL(answer)`. Inner calls are traced as child runs of the ChatRLM run.

    Setup:
        ```bash
        pip install "rlm-plugins[langchain]" langchain-openai
        export OPENAI_API_KEY="your-api-key"
        ```

    Key init args — completion params:
        | arg | meaning |
        | --- | --- |
        | `root` (alias `model`) | the root chat model, or a `"provider:model"` string for `init_chat_model` |
        | `sub` | the model `llm_query` calls; defaults to `root` |
        | `max_iterations`, `max_llm_calls`, `max_depth`, `max_time` | the run's budgets |
        | `context_threshold` | message contents longer than this (characters) move into the REPL |

    Key init args — client params:
        | arg | meaning |
        | --- | --- |
        | `sandbox` | `"local"` (isolated subprocess), `"inprocess"`, `"e2b"`, or a factory |
        | `sandbox_options` | keyword arguments for the sandbox (e.g. `{"isolation": "require"}`) |
        | `max_concurrency` | parallel `llm_query_batched` calls |
        | `session_ttl`, `max_sessions` | how long and how many paused tool-call sessions are kept |

    Instantiate:
        ```python
        from rlm_plugins.langchain import ChatRLM

        model = ChatRLM(root="openai:gpt-4o", sub="openai:gpt-4o-mini", max_iterations=12)
        ```

    Invoke:
        ```python
        long_report = open("report.txt").read()  # far too long for one prompt
        model.invoke([("user", long_report), ("user", "Which quarter had the highest revenue?")])
        # AIMessage(content="Q3 2024", response_metadata={"model_name": "gpt-4o", "usage_by_model": {...}})
        ```

    Stream:
        ```python
        for chunk in model.stream("..."):
            print(chunk.text, end="")  # the final answer, in pieces; the last chunk carries the usage
        ```

        The run's progress comes as custom events (and, in a LangGraph node, as `stream_mode="custom"` items),
        then the answer streams. `stream`/`astream` go through `invoke`/`ainvoke`: langchain-core's v1 streaming
        path calls `_stream` without the run manager that parents the inner runs (the README quotes the lines);
        `stream_events(version="v3")` passes it. Stream consumers get the answer as tokens of the ChatRLM run.

    Async:
        ```python
        await model.ainvoke("...")
        async for event in model.astream_events("...", version="v2"):
            if event["event"] == "on_custom_event":  # one per trajectory step: rlm_root_step, rlm_sub_call, ...
                print(event["name"], event["data"])
        ```

    Tool calling:
        Bound tools are functions in the REPL. When the root model's code calls one, the code block stops,
        the run pauses before the root's next turn, and ChatRLM returns an `AIMessage` with those
        `tool_calls` (ids start with `call_rlm_`, fresh for every pause). The paused run (history, budget,
        pending calls; the sandbox stays alive) waits in `session_store` (in memory by default, or a
        `RedisSessionStore`) for `session_ttl` seconds. Send the conversation back with the `ToolMessage`s and
        the same REPL resumes: the results are in the REPL as `tool_results[call_id]` and in the root's next
        prompt. A paused run resumes once; an expired one raises `SessionExpiredError`. A paused answer served
        from an LLM cache gets new ids that resume nothing, so another conversation never resumes this one's
        REPL. `tool_choice="any"` or a tool name makes the root call a tool before it may answer. ToolMessages
        for ids ChatRLM did not hand out are treated as ordinary conversation.

        ```python
        agent_model = model.bind_tools([get_weather])
        msg = agent_model.invoke("Is it warmer in Paris or Rome?")  # msg.tool_calls == [...]
        ```

    Conversation threads:
        A call whose config has `configurable.thread_id` (LangGraph with a checkpointer) is a turn of that
        thread's REPL session: variables of earlier turns stay, `history` holds the previous turn. The session
        waits in `session_store` for `thread_ttl` seconds; `close_thread(thread_id)` ends it. An e2b sandbox
        resumes in another process that shares the store; otherwise the turn starts a new session, and
        `response_metadata["rlm"]["session"]` says so and why.

        ```python
        app.invoke({"messages": [("user", "...")]}, {"configurable": {"thread_id": "alice"}})
        ```

    Structured output:
        `with_structured_output(schema)` (Pydantic, TypedDict or JSON schema; `include_raw` supported): the
        root must end with `FINAL(dict)` matching the schema, and a mismatch is sent back to it to fix.

    Token usage:
        `usage_metadata` sums every root and sub call of this invocation; `response_metadata["usage_by_model"]`
        breaks it down per model, and `response_metadata["rlm"]` gives the finish reason and iterations.
    """

    model_config = ConfigDict(populate_by_name=True)

    root: BaseChatModel = Field(alias="model")
    """The root chat model that writes the REPL code, or a `"provider:model"` string for `init_chat_model`."""
    sub: BaseChatModel | None = None
    """The chat model `llm_query` calls; None uses `root`."""
    sandbox: str | Callable[..., Any] = "local"
    """Where the code runs: "local", "inprocess", "e2b", or a callable returning a new sandbox."""
    sandbox_options: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the sandbox, e.g. `{"isolation": "require"}`."""
    max_iterations: int = 20
    """Root-model turns per run before the answer is extracted from what was seen."""
    max_llm_calls: int | None = 100
    """Sub-model calls per run (the whole recursion tree); None for no limit."""
    max_concurrency: int = 16
    """How many `llm_query_batched` calls run at once."""
    max_depth: int = 1
    """Recursion depth: 1 means `rlm_query` is a plain `llm_query`."""
    max_time: float | None = None
    """Wall-clock seconds per run (time paused for tool calls counts); None for no limit."""
    max_output_chars: int = 10_000
    """REPL output shown to the root model per code block."""
    context_threshold: int = 20_000
    """Message contents longer than this many characters move into the REPL as `context`."""
    stop: list[str] | None = None
    """Stop sequences: the answer is cut at the first one."""
    session_ttl: float = 600.0
    """Seconds a run paused for tool calls waits for its ToolMessages."""
    max_sessions: int = 32
    """Paused sessions kept at once in the default in-memory store; the oldest is closed when one more arrives."""
    session_store: SessionStore | None = Field(default=None, exclude=True)
    """Where runs paused for tool calls wait: None keeps them in memory; a `RedisSessionStore` shares them
    between replicas (with `sandbox="e2b"`, whose sandboxes reconnect from any process)."""

    thread_sessions: bool = True
    """Keep one REPL per conversation thread: calls whose config has `configurable.thread_id` (LangGraph with a
    checkpointer) run as turns of that thread's session and see the variables of its earlier turns."""
    thread_ttl: float = 3600.0
    """Seconds a thread's REPL waits for the thread's next turn before its sandbox is closed."""
    thread_namespace: str = "chatrlm"
    """Prefix of the threads' keys in `session_store`: give each ChatRLM of one graph its own."""

    mcp_servers: list[str | dict[str, Any]] = Field(default_factory=list)
    """MCP servers (URLs, command lines or `{"command", "args"}` dicts) whose tools become REPL functions; they are
    started at the first call and stopped when this model is garbage-collected."""

    _sessions: SessionStore | None = PrivateAttr(default=None)
    _mcp: Any = PrivateAttr(default=None)

    @field_validator("root", "sub", mode="before")
    @classmethod
    def _init_model(cls, value: Any) -> Any:
        if isinstance(value, str):
            from langchain.chat_models import init_chat_model

            return init_chat_model(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> ChatRLM:
        Limits(self.max_iterations, self.max_llm_calls, self.max_depth, self.max_time)
        if isinstance(self.sandbox, str):
            sandbox_class(self.sandbox)
        if self.context_threshold < 1:
            msg = f"context_threshold={self.context_threshold} must be at least 1 character"
            raise ValueError(msg)
        return self

    @property
    def root_model(self) -> BaseChatModel:
        return self.root

    @property
    def sub_model(self) -> BaseChatModel:
        return self.sub if self.sub is not None else self.root

    @property
    def sessions(self) -> SessionStore:
        """Runs paused for tool calls, waiting for their ToolMessages (`session_store`, or one in memory)."""
        if self.session_store is not None:
            return self.session_store
        if self._sessions is None:
            store = self._sessions = MemorySessionStore(self.max_sessions)
            weakref.finalize(self, store.clear)  # nobody can resume them once this model is gone
        return self._sessions

    @property
    def mcp_tools(self) -> dict[str, Any]:
        """The tools of `mcp_servers` as host functions (servers start on first use and are shared by copies)."""
        if not self.mcp_servers:
            return {}
        if self._mcp is None:
            from rlm_plugins.mcp.tools import McpToolset

            toolset = self._mcp = McpToolset(self.mcp_servers)
            weakref.finalize(self, toolset.close)
        return self._mcp.tools()

    @property
    def _llm_type(self) -> str:
        return "rlm"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        sandbox = (
            self.sandbox if isinstance(self.sandbox, str) else getattr(self.sandbox, "__qualname__", repr(self.sandbox))
        )
        return {
            "root": model_identity(self.root_model),
            "sub": model_identity(self.sub_model),
            "sandbox": sandbox,
            "sandbox_options": sorted((k, repr(v)) for k, v in self.sandbox_options.items()),
            "max_iterations": self.max_iterations,
            "max_llm_calls": self.max_llm_calls,
            "max_depth": self.max_depth,
            "max_time": self.max_time,
            "max_output_chars": self.max_output_chars,
            "context_threshold": self.context_threshold,
            "stop": self.stop,
            "mcp_servers": [repr(server) for server in self.mcp_servers],
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        name = kwargs.get("model")
        params = LangSmithParams(
            ls_provider="rlm",
            ls_model_name=name if isinstance(name, str) else model_label(self.root_model),
            ls_model_type="chat",
        )
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def _invocation(
        self, messages: list[BaseMessage], run_manager: Any, kwargs: dict[str, Any]
    ) -> tuple[Invocation, ThreadTurn | None]:
        ids = resumable_ids(messages)
        if ids:
            data = paused_data(self, self.sessions.take(pause_key(ids[-1])), ids)
            inv = resumed_invocation(self, data, messages, run_manager, kwargs)
            return inv, adopted(paused_turn(data), inv)
        turn = open_turn(self, messages, kwargs)
        return new_invocation(self, messages, run_manager, kwargs, turn.start if turn else None), turn

    async def _ainvocation(
        self, messages: list[BaseMessage], run_manager: Any, kwargs: dict[str, Any]
    ) -> tuple[Invocation, ThreadTurn | None]:
        ids = resumable_ids(messages)
        if ids:
            data = paused_data(self, await self.sessions.atake(pause_key(ids[-1])), ids)
            ref = data.get("sandbox")
            sandbox = await asyncio.to_thread(reconnect, ref) if ref is not None else None  # E2B: HTTP
            inv = resumed_invocation(self, data, messages, run_manager, kwargs, sandbox)
            return inv, adopted(paused_turn(data), inv)
        turn = await aopen_turn(self, messages, kwargs)
        return new_invocation(self, messages, run_manager, kwargs, turn.start if turn else None), turn

    def _run(self, messages: list[BaseMessage], stop: list[str] | None, run_manager: Any, kwargs: dict) -> AIMessage:
        inv, turn = self._invocation(messages, run_manager, kwargs)
        with dropped_on_error(turn):
            load_results(inv)
            outcome = drive(inv.run, pause_hook(inv.log))
            if isinstance(outcome, Paused):
                key, data = saved_pause(inv, outcome, self.session_ttl)
                self.sessions.put(key, with_turn(data, turn), self.session_ttl)
            else:
                end_turn(self, turn, inv.run, outcome)
        return with_session(to_message(self, inv, outcome, stop or self.stop), turn)

    async def _arun(
        self, messages: list[BaseMessage], stop: list[str] | None, run_manager: Any, kwargs: dict
    ) -> AIMessage:
        inv, turn = await self._ainvocation(messages, run_manager, kwargs)
        with dropped_on_error(turn):
            try:
                await aload_results(inv)
                outcome = await adrive(inv.run, pause_hook(inv.log))
            finally:
                await inv.binding.flush()
            if isinstance(outcome, Paused):
                key, data = saved_pause(inv, outcome, self.session_ttl)
                await self.sessions.aput(key, with_turn(data, turn), self.session_ttl)
            else:
                await aend_turn(self, turn, inv.run, outcome)
        return with_session(to_message(self, inv, outcome, stop or self.stop), turn)

    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Answer `input`; a `thread_id` in `config["configurable"]` runs it in that thread's REPL session."""
        with on_thread(config, self.thread_sessions):
            return super().invoke(input, config, stop=stop, **kwargs)

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """The async twin of `invoke`."""
        with on_thread(config, self.thread_sessions):
            return await super().ainvoke(input, config, stop=stop, **kwargs)

    def stream_events(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """langchain-core's `stream_events`; with `version="v3"` a `thread_id` in `config` selects the thread too."""
        return super().stream_events(input, config, **v3_kwargs(self, config, kwargs))

    def astream_events(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """The async twin of `stream_events`."""
        return super().astream_events(input, config, **v3_kwargs(self, config, kwargs))

    def close_thread(self, thread_id: str) -> bool:
        """End a thread's REPL session now and close its sandbox; False when no session is stored for it."""
        return close_thread(self, thread_id)

    async def aclose_thread(self, thread_id: str) -> bool:
        """The async twin of `close_thread`."""
        return await asyncio.to_thread(close_thread, self, thread_id)

    def _convert_cached_generations(self, cache_val: list[Any]) -> list[ChatGeneration]:
        """A cached answer that paused for tool calls gets fresh ids that resume nothing, so a second conversation
        hit by the cache never resumes the first one's REPL; its ToolMessages then start a fresh run."""
        generations = super()._convert_cached_generations(cache_val)
        return [
            ChatGeneration(message=uncached_calls(g.message), generation_info=g.generation_info) for g in generations
        ]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._run(messages, stop, run_manager, kwargs)
        for chunk in token_chunks(message, run_manager):
            run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        handoff = HANDOFF.get()
        HANDOFF.set(None)  # only this run streams to `astream`, not inner models
        message = await self._arun(messages, stop, run_manager, kwargs)
        chunks = token_chunks(message, run_manager)
        for chunk in chunks:
            await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
        if handoff is not None:
            await handoff.send(chunks or list(to_chunks(message)))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _should_stream(self, *, async_api: bool, run_manager: Any = None, **kwargs: Any) -> bool:
        return False  # v1 streaming calls `_stream` without the run manager; `_generate` streams tokens instead

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream the final answer as `AIMessageChunk`s (the run itself completes first; its steps are events)."""
        token = STREAMING.set(True)
        try:
            message = self.invoke(input, config, stop=stop, **kwargs)
        finally:
            STREAMING.reset(token)
        for chunk in to_chunks(message):
            yield chunk.message

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """The async twin of `stream`; the chunks come while the run is still open (see `Handoff`)."""
        handoff = Handoff()
        token = HANDOFF.set(handoff)
        try:
            task = asyncio.ensure_future(self.ainvoke(input, config, stop=stop, **kwargs))
        finally:
            HANDOFF.reset(token)
        async for chunk in handoff.receive(task):
            yield chunk

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in to_chunks(self._run(messages, stop, run_manager, kwargs)):
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in to_chunks(await self._arun(messages, stop, run_manager, kwargs)):
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: dict | str | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Expose `tools` to the root model as REPL functions whose calls go back to the caller.

        Args:
            tools: LangChain tools, functions, Pydantic models, TypedDicts or OpenAI tool dicts.
            tool_choice: "auto" (default), "any"/"required", "none", or the name of a tool the root must call.

        Returns:
            A runnable that answers with an `AIMessage`, carrying `tool_calls` when the run paused for them.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        names = [tool["function"]["name"] for tool in formatted]
        check_tool_names(names)
        choice = normalize_tool_choice(tool_choice, names)
        return super().bind(tools=formatted, tool_choice=choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type | None = None,
        *,
        include_raw: bool = False,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """A runnable whose output is parsed into `schema`: the root model ends with `FINAL(dict)` matching it.

        Args:
            schema: a Pydantic class (output: an instance), a TypedDict or a JSON schema (output: a dict); None
                only with method="json_mode" (any JSON object).
            include_raw: return `{"raw", "parsed", "parsing_error"}` instead of raising on a parse error.
            method: "function_calling" (the answer as a tool call), "json_schema" or "json_mode" (as JSON text).
            strict: accepted for compatibility; the schema is always enforced, and a mismatch goes back to the root.
        """
        if kwargs:
            msg = f"with_structured_output got unsupported arguments {sorted(kwargs)}"
            raise ValueError(msg)
        if schema is None and method != "json_mode":
            msg = "with_structured_output needs a schema; pass schema=... or method='json_mode'"
            raise ValueError(msg)
        pydantic = schema if isinstance(schema, type) and is_basemodel_subclass(schema) else None
        tool = convert_to_openai_tool(schema)["function"] if schema is not None else None
        spec = tool or {"name": "json_output", "parameters": {"type": "object"}}
        llm = self.bind(
            rlm_structured_output={"schema": spec, "pydantic": pydantic, "method": method},
            ls_structured_output_format={"kwargs": {"method": method, "strict": strict}, "schema": tool or {}},
        )
        return structured_runnable(llm, spec, pydantic, method, include_raw)
