"""`RLMAgent`: a conversational assistant on an RLM session, with tools, contexts, streaming and save/load."""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, Literal, overload

from rlm_plugins.agent import _persist
from rlm_plugins.agent._memory import Memory
from rlm_plugins.agent._ports import model_ports
from rlm_plugins.agent._prompt import AgentContext, compose, describe, guard
from rlm_plugins.agent._schema import ToolSchema, described, tool_schema
from rlm_plugins.agent._stream import stream_async, stream_sync
from rlm_plugins.agent.errors import ContextInPromptError, ToolSchemaError
from rlm_plugins.agent.events import AgentEvent, EventTranslator, Sink
from rlm_plugins.core.events import Observer
from rlm_plugins.core.ports import Policy, SubModel
from rlm_plugins.core.result import RLMResult
from rlm_plugins.core.session import Session
from rlm_plugins.errors import ConfigurationError, SessionBusyError
from rlm_plugins.repl.base import RESERVED_NAMES, Sandbox
from rlm_plugins.standalone.rlm import RLM

SaveReport = _persist.SaveReport
_SESSION_NAMES = re.compile(r"^(context|history)(_\d+)?$")
DEFAULT_INLINE_LIMIT = 4_000
MIN_MEMORY_CHARS = 1_000
_NOT_OPTIONS = ("persistent", "policy", "observers", "tools", "custom_tools")


class RLMAgent:
    """An assistant whose inputs live in a REPL across a conversation: the root model sees only their sizes.

    Each `chat` is one turn of a `Session` (one sandbox for the whole conversation): the message is `context`
    (and `context_<n>`), the previous turn's messages are `history` (and `history_<n>`), and every variable the
    model made in earlier turns is still there. The root prompt carries the recent conversation, compacted so it
    never passes `memory_chars`, and a short description of each context added with `add_context`.

    Args:
        model: the root model: a "provider/name" string, a `Policy`, or a function taking OpenAI-style messages and
            returning the reply text (a scripted model, say).
        sub_model: what `llm_query` calls: a model string, a `SubModel`, or a function `prompt -> text`; defaults to
            `model` when that is a string.
        sandbox: "local", "inprocess", "docker", "e2b", or a sandbox factory.
        instructions: what the assistant is told at the top of every turn's question (its role, its tone).
        enforced: refuse (`ContextInPromptError`) to put any context longer than `max_prompt_context` characters
            into a root prompt; `create_enforced_agent` turns it on.
        max_prompt_context: the enforced threshold, in characters.
        inline_limit: messages up to this many characters (4,000 by default) are also quoted in the root prompt;
            longer ones are only in the REPL. An enforced agent defaults it to at most `max_prompt_context`.
        memory_chars: the most characters the conversation takes in a root prompt.
        max_history_tokens: the within-turn history budget of the root model (older steps are compacted).
        tools: functions to register at once (name -> function), as `register_tool` does.
        observers: callables that receive every core event of every turn.
        **options: `rlm_plugins.RLM` options (max_iterations, max_llm_calls, sandbox_options, api_base, logger, ...).

    Examples:
        >>> agent = RLMAgent(model="openai/gpt-5-mini", sandbox="local")  # doctest: +SKIP
        >>> agent.add_context("report", pathlib.Path("annual_report.txt"))  # doctest: +SKIP
        >>> agent.chat("Which supplier does the report mention most?")  # doctest: +SKIP
        >>> for event in agent.chat("And how often?", stream=True):  # doctest: +SKIP
        ...     print(event)
    """

    def __init__(
        self,
        model: str | Policy | Callable[[list[dict[str, str]]], Any] = "openai/gpt-5-mini",
        sub_model: str | SubModel | Callable[[str], Any] | None = None,
        sandbox: str | Callable[..., Sandbox] = "local",
        *,
        instructions: str | None = None,
        enforced: bool = False,
        max_prompt_context: int = 2_000,
        inline_limit: int | None = None,
        memory_chars: int = 6_000,
        max_history_tokens: int | None = None,
        tools: Mapping[str, Callable[..., Any]] | None = None,
        observers: list[Observer] | None = None,
        **options: Any,
    ) -> None:
        if memory_chars < MIN_MEMORY_CHARS:
            raise ConfigurationError(f"memory_chars={memory_chars} is too small; pass {MIN_MEMORY_CHARS} or more")
        clash = sorted(set(options) & set(_NOT_OPTIONS))
        if clash:
            raise ConfigurationError(f"RLMAgent() does not take {clash}: pass tools= and observers= instead")
        if inline_limit is None:
            inline_limit = min(DEFAULT_INLINE_LIMIT, max_prompt_context) if enforced else DEFAULT_INLINE_LIMIT
        elif enforced and inline_limit > max_prompt_context:
            msg = (
                f"inline_limit={inline_limit:,} would quote messages longer than this enforced agent's "
                f"max_prompt_context={max_prompt_context:,} in root prompts; leave inline_limit out or lower it"
            )
            raise ContextInPromptError(msg)
        self.enforced = enforced
        self.max_prompt_context = max_prompt_context
        self.inline_limit = inline_limit
        self.instructions = instructions
        self.memory = Memory(memory_chars)
        self.contexts: dict[str, AgentContext] = {}
        self.last_result: RLMResult | None = None
        self.restored: SaveReport | None = None
        self._schemas: dict[str, ToolSchema] = {}
        self._events = EventTranslator()
        self._busy = threading.Lock()
        policy, sub_model = model_ports(model, sub_model, max_history_tokens)
        self.rlm = RLM(
            model if isinstance(model, str) else None,
            sub_model,
            sandbox,
            policy=policy,
            max_history_tokens=max_history_tokens,
            persistent=True,
            observers=[*(observers or []), self._events],
            **options,
        )
        self._events.max_iterations = self.rlm.engine.limits.max_iterations
        self.session: Session = self.rlm.session  # type: ignore[assignment]
        for name, fn in (tools or {}).items():
            self.register_tool(name, fn)

    @property
    def tools(self) -> list[ToolSchema]:
        """The registered tools' schemas (parameters from the type hints, descriptions from the docstrings)."""
        return list(self._schemas.values())

    @property
    def turns(self) -> int:
        """How many turns the conversation has had."""
        return self.session.turns

    def register_tool(self, name: str, fn: Callable[..., Any], description: str | None = None) -> ToolSchema:
        """Make `fn` (sync or async) a function of the REPL called `name`, listed in the root prompt from the next
        turn on; `description` replaces its docstring there. Returns its schema."""
        self._check_name(name, "tool")
        schema = tool_schema(name, fn, description)
        self.rlm.engine.tools[name] = described(fn, description)
        self._schemas[name] = schema
        return schema

    def add_context(self, name: str, value: Any, *, inline: bool = False) -> None:
        """Put `value` (str, bytes, JSON data or a `pathlib.Path`) into the REPL as `name`, for every later turn.

        Only its type, size and a short preview reach the root prompt; `inline=True` shows it in full there
        (refused by an enforced agent when it is longer than `max_prompt_context`).
        """
        context = self._context(name, value, inline)
        with self._turn_free():
            self._sandbox().load(name, value)
        self.contexts[name] = context

    async def aadd_context(self, name: str, value: Any, *, inline: bool = False) -> None:
        """The async twin of `add_context`."""
        context = self._context(name, value, inline)
        with self._turn_free():
            await self._sandbox().aload(name, value)
        self.contexts[name] = context

    @overload
    def chat(self, message: Any, *, stream: Literal[False] = False) -> str: ...
    @overload
    def chat(self, message: Any, *, stream: Literal[True]) -> Iterator[AgentEvent]: ...
    def chat(self, message: Any, *, stream: bool = False) -> str | Iterator[AgentEvent]:
        """Answer `message` (one turn); with `stream=True`, an iterator of the turn's events instead."""
        turn, query, remembered = self._prepare(message)
        if stream:
            return stream_sync(lambda sink: self._turn(message, query, remembered, sink), turn, self.session.cancel)
        return self._turn(message, query, remembered, None).response

    @overload
    def achat(self, message: Any, *, stream: Literal[False] = False) -> Awaitable[str]: ...
    @overload
    def achat(self, message: Any, *, stream: Literal[True]) -> AsyncIterator[AgentEvent]: ...
    def achat(self, message: Any, *, stream: bool = False) -> Awaitable[str] | AsyncIterator[AgentEvent]:
        """The async twin of `chat`: `await agent.achat(m)`, or `async for event in agent.achat(m, stream=True)`."""
        turn, query, remembered = self._prepare(message)
        if stream:
            return stream_async(lambda sink: self._aturn(message, query, remembered, sink), turn)
        return self._answer(self._aturn(message, query, remembered, None))

    def save(self, path: str | os.PathLike[str]) -> SaveReport:
        """Write the conversation and the REPL's picklable variables to `path`; the report lists what was saved
        and, with the reason, every variable that could not be (functions defined in the REPL, open files, ...)."""
        with self._turn_free():
            sandbox = self.session.sandbox
            blob, saved, skipped, imports = None, [], {}, {}
            if sandbox is not None:
                skip = set(RESERVED_NAMES) | set(self.rlm.engine.tools)
                blob, saved, skipped, imports = _persist.dump_variables(sandbox, skip)
            manifest = {
                "turns": self.session.turns,
                "last_messages": self.session.last_messages,
                "memory": self.memory.to_list(),
                "contexts": {name: ctx.to_data() for name, ctx in self.contexts.items()},
                "tools": sorted(self._schemas),
                "skipped": skipped,
                "imports": imports,
            }
            _persist.write(path, manifest, blob)
        return SaveReport(os.fspath(path), [*saved, *imports], skipped)

    @classmethod
    def load(cls, path: str | os.PathLike[str], model: Any = "openai/gpt-5-mini", **kwargs: Any) -> RLMAgent:
        """An agent continuing the conversation saved at `path`, on any sandbox kind (`sandbox=`, as for the
        constructor). Tools are functions of this process: register them again. `agent.restored` reports which
        variables came back and which did not (and why)."""
        manifest, blob = _persist.read(path)
        agent = cls(model, **kwargs)
        agent.memory.extend(manifest["memory"])
        for name, data in manifest["contexts"].items():
            agent.contexts[name] = AgentContext.from_data(name, data)
        report = SaveReport(os.fspath(path), [], dict(manifest.get("skipped") or {}))
        sandbox = None
        if blob is not None:
            sandbox = agent._new_sandbox()
            try:
                restored, failed = _persist.load_variables(sandbox, blob)
            except BaseException:
                sandbox.close()
                raise
            report.saved, report.skipped = restored, {**report.skipped, **failed}
        if sandbox is not None or manifest["turns"]:
            agent.session.attach(
                sandbox or agent._new_sandbox(), turns=manifest["turns"], history=manifest["last_messages"]
            )
        agent.restored = report
        return agent

    def close(self) -> None:
        """Release the sandbox (and MCP servers); the agent cannot chat afterwards."""
        self.rlm.close()

    async def aclose(self) -> None:
        """The async twin of `close`."""
        await self.rlm.aclose()

    def __enter__(self) -> RLMAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RLMAgent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _prepare(self, message: Any) -> tuple[int, str, str]:
        turn = self.session.turns
        query, remembered = compose(
            message,
            turn,
            instructions=self.instructions,
            memory=self.memory.render(),
            contexts=self.contexts,
            inline_limit=self.inline_limit,
            threshold=self.max_prompt_context if self.enforced else None,
        )
        return turn, query, remembered

    def _turn(self, message: Any, query: str, remembered: str, sink: Sink | None) -> RLMResult:
        with self._turn_free():
            self._start(sink)
            try:
                result = self.session.completion(message, root_prompt=query)
            finally:
                self._events.sink = None
            return self._finish(remembered, result)

    async def _aturn(self, message: Any, query: str, remembered: str, sink: Sink | None) -> RLMResult:
        with self._turn_free():
            self._start(sink)
            try:
                result = await self.session.acompletion(message, root_prompt=query)
            finally:
                self._events.sink = None
            return self._finish(remembered, result)

    @staticmethod
    async def _answer(turn: Awaitable[RLMResult]) -> str:
        return (await turn).response

    def _start(self, sink: Sink | None) -> None:
        self._events.turn = self.session.turns
        self._events.sink = sink

    def _finish(self, remembered: str, result: RLMResult) -> RLMResult:
        self.memory.add(self.session.turns - 1, remembered, result.response)
        self.last_result = result
        return result

    @contextlib.contextmanager
    def _turn_free(self) -> Iterator[None]:
        if not self._busy.acquire(blocking=False):
            raise SessionBusyError("this agent is in a turn (or saving); wait for it: one turn at a time")
        try:
            yield
        finally:
            self._busy.release()

    def _sandbox(self) -> Sandbox:
        """The conversation's sandbox, made now when no turn has made it yet."""
        if self.session.sandbox is None:
            self.session.attach(self._new_sandbox())
        return self.session.sandbox  # type: ignore[return-value]

    def _new_sandbox(self) -> Sandbox:
        engine = self.rlm.engine
        return engine.sandbox_factory(max_output_chars=engine.max_output_chars, final_fields=engine.final_fields)

    def _context(self, name: str, value: Any, inline: bool) -> AgentContext:
        self._check_name(name, "context")
        if isinstance(value, pathlib.Path) and not value.is_file():
            raise ConfigurationError(f"add_context({name!r}, ...): {value} is not a readable file")
        text = None
        if inline:
            text = value if isinstance(value, str) else describe(name, value).preview
            if not isinstance(value, str):
                raise ConfigurationError(f"add_context({name!r}, ..., inline=True) takes a str; pass text to inline")
            guard(f"the context {name!r}", text, self.max_prompt_context if self.enforced else None)
        return AgentContext(describe(name, value), text)

    def _check_name(self, name: str, kind: str) -> None:
        taken = set(self._schemas) | (set(self.contexts) - {name} if kind == "context" else set(self.contexts))
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise ToolSchemaError(f"{kind} name {name!r} must be a Python identifier not starting with '_'")
        if name in RESERVED_NAMES or _SESSION_NAMES.match(name) or name in taken:
            msg = f"{kind} name {name!r} is already used in the REPL (built-ins, context/history, tools, contexts)"
            raise ToolSchemaError(msg + "; choose another")


def create_enforced_agent(
    model: Any = "openai/gpt-5-mini", sub_model: Any = None, sandbox: Any = "local", **kwargs: Any
) -> RLMAgent:
    """An `RLMAgent` that refuses to put any context over `max_prompt_context` characters into a root prompt."""
    return RLMAgent(model, sub_model, sandbox, enforced=True, **kwargs)
