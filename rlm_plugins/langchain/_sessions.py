"""Paused RLM runs waiting for the caller's tool results: a bounded store with a time-to-live.

A run pauses when its code called external tools. The engine's step generator, its sandbox (with the REPL
state) and the call log wait here, keyed by the tool-call ids they handed out. `take` removes a session, so a
session resumes once; expired or evicted sessions close their sandbox.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from rlm_plugins.core.engine import Run
from rlm_plugins.core.ports import Usage
from rlm_plugins.errors import RLMError
from rlm_plugins.langchain._callbacks import Binding
from rlm_plugins.langchain._tools import CallLog


class SessionExpiredError(RLMError, LookupError):
    """ToolMessages answer tool calls whose paused REPL session is gone (expired, evicted, or already resumed)."""


@dataclass
class Session:
    """A paused run: resume it by performing `op` and sending its result into `flow`."""

    run: Run
    op: Any
    binding: Binding
    log: CallLog
    call_ids: list[str]
    usage_base: dict[str, Usage]
    results: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    method: str = "function_calling"
    created: float = field(default_factory=time.monotonic)

    def close(self) -> None:
        """Stop the sandbox (on a thread: an expiry noticed on an event loop must not block it)."""
        sandbox = self.run.sandbox
        if sandbox is not None:
            threading.Thread(target=sandbox.close, name="rlm-session-close", daemon=True).start()


class SessionStore:
    """Paused sessions by tool-call id, at most `max_sessions` of them, each for at most `ttl` seconds."""

    def __init__(self, max_sessions: int = 32, ttl: float = 600.0) -> None:
        self.max_sessions = max_sessions
        self.ttl = ttl
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, session: Session) -> None:
        evicted = []
        with self._lock:
            evicted += self._expire()
            key = session.call_ids[0]
            self._sessions[key] = session
            while len(self._sessions) > self.max_sessions:
                evicted.append(self._sessions.popitem(last=False)[1])
        for old in evicted:
            old.close()

    def take(self, call_ids: list[str]) -> Session:
        """The session that handed out these tool calls, removed from the store."""
        with self._lock:
            expired = self._expire()
            session = None
            for key, candidate in self._sessions.items():
                if set(call_ids) & set(candidate.call_ids):
                    session = self._sessions.pop(key)
                    break
        for old in expired:
            old.close()
        if session is None:
            msg = (
                f"no paused RLM session holds the tool calls {call_ids}: it expired (session_ttl={self.ttl:g}s), "
                f"was evicted (max_sessions={self.max_sessions}), or was already resumed. Send the question again "
                "without these ToolMessages, or raise session_ttl / max_sessions on ChatRLM"
            )
            raise SessionExpiredError(msg)
        return session

    def _expire(self) -> list[Session]:
        now = time.monotonic()
        dead = [key for key, s in self._sessions.items() if now - s.created > self.ttl]
        return [self._sessions.pop(key) for key in dead]

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), OrderedDict()
        for session in sessions:
            session.close()
