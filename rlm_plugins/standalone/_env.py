"""`PersistentREPL`: a look into a persistent `RLM`'s REPL between turns (the official `_persistent_env` shape)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from rlm_plugins.core.session import Session
from rlm_plugins.repl.base import Sandbox

_NAMES = "[k for k in globals() if not k.startswith('_')]"


class REPLVariables(Mapping[str, Any]):
    """The REPL's variables, read from the sandbox on access as plain data (JSON-like: lists, dicts, numbers,
    text); a value that is not plain data reads as None."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def __getitem__(self, name: str) -> Any:
        if not isinstance(name, str) or not name.isidentifier():
            raise KeyError(name)
        result = self._sandbox.execute(name)
        if result.error is not None:
            raise KeyError(name)
        return result.value

    def __iter__(self) -> Iterator[str]:
        return iter(self._sandbox.execute(_NAMES).value or [])

    def __len__(self) -> int:
        return len(self._sandbox.execute(_NAMES).value or [])


class PersistentREPL:
    """The REPL a persistent `RLM` keeps across `completion` calls: its variables and its turn counts.

    Read it between turns, not while a turn runs (each read runs a line of code in the REPL).
    """

    def __init__(self, session: Session, sandbox: Sandbox) -> None:
        self.session = session
        self.sandbox = sandbox
        self.locals = REPLVariables(sandbox)

    def get_context_count(self) -> int:
        """How many `context_<n>` inputs the REPL holds."""
        return self.session.turns

    def get_history_count(self) -> int:
        """How many `history_<n>` turn transcripts the REPL holds (each is stored when its turn ends)."""
        return self.session.turns
