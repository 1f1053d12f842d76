"""REPLs kept across calls of `rlm_plugins.dspy.RLM`: an explicit `RLMSession`, or one per conversation.

A call with `session=` is a turn of that session (a core `Session`): its inputs are loaded under their names into
the same sandbox, so variables made in earlier calls are still there, and `history_<n>` holds each earlier turn's
steps. A module built with `persistent=True` keeps one session per conversation, found by its `dspy.History`: a
call continues the REPL of the call whose inputs and outputs its history ends with, so a chat loop that appends
each turn to its history keeps one REPL, while calls with other histories (examples of an optimizer or of
`dspy.Evaluate`, which may run on one module from many threads) never share REPL state. Copies of a module
(optimizers deep-copy them) start with no sessions.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import dspy
from pydantic_core import to_jsonable_python

from rlm_plugins.core.engine import Engine
from rlm_plugins.core.result import RLMResult
from rlm_plugins.core.session import Session
from rlm_plugins.errors import ConfigurationError


class RLMSession:
    """One REPL kept across calls: pass it as `rlm(..., session=chat)`; close it (or use `with`) when done.

    Args:
        idle_timeout: seconds without a call after which the sandbox is released; None keeps it until `close()`.

    Examples:
        ```python
        rlm = RLM("question -> answer")
        with RLMSession() as chat:
            rlm(question="Load the numbers 1..10 into `xs`.", session=chat)
            print(rlm(question="What is sum(xs)?", session=chat).answer)
        ```
    """

    def __init__(self, idle_timeout: float | None = None) -> None:
        self.idle_timeout = idle_timeout
        self.core: Session | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def turns(self) -> int:
        """How many calls this session has served."""
        return self.core.turns if self.core is not None else 0

    def _for(self, engine: Engine) -> Session:
        """The core session, its turn running on `engine` (the engine of this call, in its `dspy.context`)."""
        with self._lock:
            if self.core is None:
                self.core = Session(engine, idle_timeout=self.idle_timeout)
                if self._closed:
                    self.core.close()
            self.core.engine = engine
            return self.core

    def run(self, engine: Engine, query: str, inputs: dict[str, Any]) -> RLMResult:
        """One call as a turn of this session."""
        return self._for(engine).completion(None, query, inputs=inputs)

    async def arun(self, engine: Engine, query: str, inputs: dict[str, Any]) -> RLMResult:
        """The async twin of `run`."""
        return await self._for(engine).acompletion(None, query, inputs=inputs)

    def close(self) -> None:
        """Release the sandbox; later calls with this session raise `SessionExpiredError`."""
        with self._lock:
            self._closed = True
            core = self.core
        if core is not None:
            core.close()

    def __enter__(self) -> RLMSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Conversations:
    """The sessions of a `persistent=True` module, keyed by where each conversation stands; copies start empty.

    Args:
        signature: the module's signature; its `dspy.History` input field finds the conversations.
        limit: conversations kept at once; the least recently used one is closed beyond it.
        idle_timeout: seconds after which an unused conversation's sandbox is released.

    Raises:
        ConfigurationError: the signature has no `dspy.History` input field.
    """

    def __init__(self, signature: type[dspy.Signature], limit: int = 32, idle_timeout: float | None = 600.0) -> None:
        self.field = history_field(signature)
        if self.field is None:
            raise ConfigurationError(
                "persistent=True finds each conversation by a dspy.History input field; add one to the signature "
                "(e.g. 'question, history: dspy.History -> answer'), or pass session=RLMSession() to each call"
            )
        self.signature = signature
        self.names = [name for name in [*signature.input_fields, *signature.output_fields] if name != self.field]
        self.limit = limit
        self.idle_timeout = idle_timeout
        self._sessions: OrderedDict[str, RLMSession] = OrderedDict()
        self._lock = threading.Lock()

    def _messages(self, input_args: dict[str, Any]) -> list[Any]:
        return list(getattr(input_args.get(self.field or ""), "messages", None) or [])

    def take(self, input_args: dict[str, Any]) -> RLMSession:
        """The session of the call this call's history continues (held until `keep`), else a new one."""
        key = conversation_key(self._messages(input_args), self.names)
        with self._lock:
            found = self._sessions.pop(key, None) if key is not None else None
        return found or RLMSession(self.idle_timeout)

    def keep(self, session: RLMSession, input_args: dict[str, Any], pred: Any) -> None:
        """Keep `session` for the call whose history ends with this call's inputs and outputs `pred`.

        A call that failed (`pred` None) closes its session instead.
        """
        if pred is None:
            session.close()
            return
        turn = {**{k: v for k, v in input_args.items() if k != self.field}, **pred}
        key = conversation_key([*self._messages(input_args), turn], self.names) or ""
        with self._lock:
            self._sessions[key] = session
            evicted = [self._sessions.popitem(last=False)[1] for _ in range(len(self._sessions) - self.limit)]
        for old in evicted:
            old.close()

    def close(self) -> None:
        """Close every kept session."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), OrderedDict()
        for session in sessions:
            session.close()

    def __deepcopy__(self, memo: dict[int, Any]) -> Conversations:
        return Conversations(self.signature, self.limit, self.idle_timeout)

    def __getstate__(self) -> dict[str, Any]:
        return {"signature": self.signature, "limit": self.limit, "idle_timeout": self.idle_timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["signature"], state["limit"], state["idle_timeout"])  # type: ignore[misc]


def history_field(signature: type[dspy.Signature]) -> str | None:
    """The name of the signature's `dspy.History` input field, if it has one."""
    for name, field in signature.input_fields.items():
        if field.annotation is dspy.History:
            return name
    return None


def conversation_key(messages: Iterable[Any], names: Iterable[str]) -> str | None:
    """A fingerprint of a conversation's messages, read through the signature's field `names`; None when empty."""
    names = sorted(names)
    turns = [{name: message[name] for name in names if name in message} for message in messages]
    if not turns:
        return None
    text = json.dumps(to_jsonable_python(turns, fallback=str), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


__all__ = ["Conversations", "RLMSession", "conversation_key", "history_field"]
