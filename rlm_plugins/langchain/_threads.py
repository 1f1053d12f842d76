"""One REPL per conversation thread: the `thread_id` of a call's config selects a session that keeps the sandbox.

LangGraph (and any caller) names a conversation with `config["configurable"]["thread_id"]`. `BaseChatModel.invoke`
hands `_generate` only the callbacks, tags and metadata of the config, so `ChatRLM.invoke`/`ainvoke` read the thread
with `ensure_config` (which also merges the config of an enclosing graph node or chain) into `THREAD`, and the
invocation picks it up from there.

Between turns the thread's session lives in the model's `SessionStore` as plain data (turn count, the digests of the
contexts it holds, a reference to the sandbox), under `thread_key`. A turn takes it (atomically), reconnects the
sandbox, runs in it as turn n of a core session (`context_<n>`, `history`), stores `history_<n>` in the REPL, and
puts the session back. A local sandbox is held in the process that ran the turn; an E2B sandbox reconnects by id
from any process sharing the store (a `RedisSessionStore`, or a `LangGraphSessionStore` over a persistent store).
When the session cannot be resumed, the turn starts a new one and `response_metadata["rlm"]["session"]` says why.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig, ensure_config

from rlm_plugins.core.budget import Budget
from rlm_plugins.core.engine import Engine, Run
from rlm_plugins.core.result import RLMResult
from rlm_plugins.core.session import turn_inputs, turn_messages, turn_note
from rlm_plugins.core.snapshot import discard, reconnect, sandbox_ref
from rlm_plugins.errors import SandboxError
from rlm_plugins.repl.base import Sandbox

if TYPE_CHECKING:
    from rlm_plugins.langchain._runtime import Invocation
    from rlm_plugins.langchain.chat_models import ChatRLM

THREAD: contextvars.ContextVar[str | None] = contextvars.ContextVar("rlm_thread", default=None)
"""The `thread_id` of the call in progress (set by `ChatRLM.invoke`/`ainvoke`), None outside a thread."""
THREAD_KWARG = "rlm_thread_id"
"""The call keyword that carries the thread where no context variable can: `stream_events(version="v3")` runs
`_stream` lazily, when its consumer pulls, outside the caller's context."""
FORMAT = 1


def thread_of(config: RunnableConfig | None) -> str | None:
    """The `thread_id` of `config`, or of the enclosing runnable's config (a LangGraph node's) when it has none."""
    value = (ensure_config(config).get("configurable") or {}).get("thread_id")
    return None if value is None else str(value)


def _digest(context: Any) -> str:
    text = context if isinstance(context, str) else json.dumps(context, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@contextmanager
def on_thread(config: RunnableConfig | None, enabled: bool = True) -> Iterator[None]:
    """Within this block, calls run on the thread of `config` (or of the enclosing runnable's); none if not enabled."""
    token = THREAD.set(thread_of(config) if enabled else None)
    try:
        yield
    finally:
        THREAD.reset(token)


def v3_kwargs(model: ChatRLM, config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keywords of a `stream_events` call, carrying the thread when it streams with `version="v3"`."""
    if kwargs.get("version") != "v3" or not model.thread_sessions:
        return kwargs
    return {**kwargs, THREAD_KWARG: thread_of(config)}


def thread_key(namespace: str, thread_id: str) -> str:
    """The store key of a thread's session; `namespace` keeps two models of one graph apart."""
    return f"rlm:thread:{namespace}:{thread_id}"


@dataclass
class ThreadTurn:
    """One turn of a thread's session: its number, the previous turn's messages, and the sandbox it runs in."""

    thread_id: str
    key: str
    turn: int
    new: bool
    note: str
    contexts: dict[str, str] = field(default_factory=dict)
    sandbox: Sandbox | None = None

    def start(self, engine: Engine, query: str, context: Any) -> Run:
        """The run of this turn in the thread's sandbox (a new one from `engine` for a new session).

        A context equal to an earlier turn's (the same long messages, sent again with the conversation) is not
        uploaded again: `context_<n>` and `context` name the earlier turn's variable.
        """
        if self.sandbox is None:
            self.sandbox = engine.sandbox_factory(
                max_output_chars=engine.max_output_chars, final_fields=engine.final_fields
            )
        loads, aliases = turn_inputs(self.turn, context, has_history=self.turn > 0)  # history_<n-1>: stored at its end
        name, digest = f"context_{self.turn}", _digest(context)
        earlier = self.contexts.get(digest)
        if earlier is None:
            self.contexts[digest] = name
        else:
            loads, aliases = [], {**aliases, name: earlier, "context": earlier}
        question = query + turn_note(self.turn)
        return Run(engine, Budget(engine.limits), question, context, loads=loads, aliases=aliases, sandbox=self.sandbox)

    def adopt(self, run: Run) -> None:
        """Keep the sandbox of a resumed run (paused for tool calls) past the run's end: the thread owns it."""
        self.sandbox = run.sandbox
        run.owns_sandbox = False

    def meta(self) -> dict[str, Any]:
        """What `response_metadata["rlm"]["session"]` says about this turn."""
        return {"thread_id": self.thread_id, "turn": self.turn, "new_session": self.new, "note": self.note}

    def to_dict(self) -> dict[str, Any]:
        """This turn as plain data, kept with a run paused for tool calls so its resume continues the thread."""
        fields = ("thread_id", "key", "turn", "new", "note", "contexts")
        return {name: getattr(self, name) for name in fields}

    def lost(self, run: Run, result: RLMResult) -> bool:
        """Whether this turn left the thread without its REPL (the sandbox failed or was stopped)."""
        return self.sandbox is None or result.finish_reason == "sandbox_error" or run.cancelled

    def history(self, run: Run, result: RLMResult) -> tuple[str, list[dict[str, Any]]]:
        """The REPL name and value of this turn's messages, which the next turn sees as `history`."""
        return f"history_{self.turn}", turn_messages(run.query, run.history, result)

    def saved(self, ttl: float) -> dict[str, Any] | None:
        """The thread's data after this turn, its sandbox kept alive `ttl` seconds; None when it cannot be kept."""
        try:
            ref = sandbox_ref(self.sandbox, ttl)  # type: ignore[arg-type]
        except SandboxError:  # an e2b sandbox that has died cannot be kept
            return None
        return {
            "format": FORMAT,
            "thread_id": self.thread_id,
            "turns": self.turn + 1,
            "contexts": self.contexts,
            "sandbox": ref,
        }

    def drop(self) -> None:
        """Close the thread's sandbox (the turn failed, so the session ends)."""
        sandbox, self.sandbox = self.sandbox, None
        if sandbox is not None:
            sandbox.close()


def open_turn(model: ChatRLM, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ThreadTurn | None:
    """The turn a call on a thread runs (None outside a thread): the stored session resumed, or a new one."""
    thread_id = kwargs.pop(THREAD_KWARG, None) or THREAD.get()
    if thread_id is None:
        return None
    key = thread_key(model.thread_namespace, thread_id)
    return _resumed(thread_id, key, model.sessions.take(key), messages)


async def aopen_turn(model: ChatRLM, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ThreadTurn | None:
    """The async twin of `open_turn` (reconnecting a remote sandbox runs off the event loop)."""
    thread_id = kwargs.pop(THREAD_KWARG, None) or THREAD.get()
    if thread_id is None:
        return None
    key = thread_key(model.thread_namespace, thread_id)
    data = await model.sessions.atake(key)
    return await asyncio.to_thread(_resumed, thread_id, key, data, messages)


def _resumed(thread_id: str, key: str, data: dict[str, Any] | None, messages: list[BaseMessage]) -> ThreadTurn:
    if data is not None and data.get("format") != FORMAT:  # written by another version of this package
        discard(data)
        data = None
    if data is not None:
        try:
            sandbox = reconnect(data["sandbox"])
        except SandboxError as exc:
            why = str(exc)
        else:
            turn = int(data["turns"])
            note = f"turn {turn} of thread {thread_id!r}: the REPL of the earlier turns, resumed"
            return ThreadTurn(thread_id, key, turn, False, note, data["contexts"], sandbox)
    elif any(isinstance(m, AIMessage) for m in messages):
        why = (
            "no session is stored for this thread (this process did not run its earlier turns, the session "
            "outlived thread_ttl or was evicted from the session store, another turn of the thread is running, or "
            "the last turn paused for tool calls that were never answered)"
        )
    else:
        return ThreadTurn(thread_id, key, 0, True, f"new session: the first turn of thread {thread_id!r}")
    note = (
        f"new session: the REPL of thread {thread_id!r} could not be resumed, so the variables of its earlier "
        f"turns are gone. Why: {why}"
    )
    return ThreadTurn(thread_id, key, 0, True, note)


def paused_turn(data: dict[str, Any]) -> ThreadTurn | None:
    """The thread turn a run paused for tool calls belongs to, from its stored data (None outside a thread)."""
    saved = (data.get("adapter") or {}).get("thread")
    return None if saved is None else ThreadTurn(**saved)


def adopted(turn: ThreadTurn | None, inv: Invocation) -> ThreadTurn | None:
    """`turn` (of a run resumed after tool calls), now owning the run's sandbox."""
    if turn is not None:
        turn.adopt(inv.run)
    return turn


def with_turn(data: dict[str, Any], turn: ThreadTurn | None) -> dict[str, Any]:
    """A paused run's stored data, carrying the thread turn it belongs to."""
    if turn is not None:
        data["adapter"]["thread"] = turn.to_dict()
    return data


def with_session(message: AIMessage, turn: ThreadTurn | None) -> AIMessage:
    """The answer, saying in `response_metadata["rlm"]["session"]` which session of which thread gave it."""
    if turn is not None:
        message.response_metadata["rlm"]["session"] = turn.meta()
    return message


def end_turn(model: ChatRLM, turn: ThreadTurn | None, run: Run, result: RLMResult) -> None:
    """Store `history_<n>` in the REPL and the thread's session in the store; close the sandbox if the REPL is lost."""
    if turn is None:
        return
    if turn.lost(run, result):
        turn.drop()
        return
    turn.sandbox.load(*turn.history(run, result))  # type: ignore[union-attr]
    _store(model, turn)


async def aend_turn(model: ChatRLM, turn: ThreadTurn | None, run: Run, result: RLMResult) -> None:
    """The async twin of `end_turn`."""
    if turn is None:
        return
    if turn.lost(run, result):
        await asyncio.to_thread(turn.drop)
        return
    await turn.sandbox.aload(*turn.history(run, result))  # type: ignore[union-attr]
    await asyncio.to_thread(_store, model, turn)  # detaching an e2b sandbox is HTTP


def _store(model: ChatRLM, turn: ThreadTurn) -> None:
    data = turn.saved(model.thread_ttl)
    if data is None:
        turn.drop()
        return
    stale = model.sessions.take(turn.key)  # a turn that ran at the same time on this thread: its REPL loses
    if stale is not None:
        discard(stale)
    model.sessions.put(turn.key, data, model.thread_ttl)


@contextmanager
def dropped_on_error(turn: ThreadTurn | None) -> Iterator[None]:
    """Close the thread's sandbox when the turn raises: a run does not close a sandbox it does not own."""
    try:
        yield
    except BaseException:
        if turn is not None:
            turn.drop()
        raise


def close_thread(model: ChatRLM, thread_id: str) -> bool:
    """End a thread's session and close its sandbox; False when none is stored."""
    data = model.sessions.take(thread_key(model.thread_namespace, str(thread_id)))
    if data is None:
        return False
    try:
        reconnect(data["sandbox"]).close()
    except SandboxError:
        return False
    return True
