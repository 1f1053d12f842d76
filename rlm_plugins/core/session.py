"""`Session`: one REPL across turns (multi-turn RLM conversations).

A session owns one sandbox. Each turn is a run in that sandbox, so variables defined in earlier turns stay, and
only what is new travels into it, following the official `rlms` package's `persistent=True` names:

| name | meaning |
| --- | --- |
| `context_<n>` | turn n's input (turns count from 0), loaded once |
| `context` | the current turn's input (the same object as the newest `context_<n>`; nothing is re-uploaded) |
| `history_<n>` | turn n's messages: the question, the root model's replies, the REPL output, the answer |
| `history` | the previous turn's messages (the newest `history_<n>`) |

The official package keeps `context` (and `history`) bound to the first turn's `context_0` (`history_0`); here
they name the newest, as a conversation reads (`aliases="first"` gives the official binding), while every numbered
name stays available. `history_<n>` is stored when turn n ends, so it is in the REPL between turns.

A turn may also bring named variables (`inputs`, e.g. a DSPy call's input fields), loaded under their own names;
an input named `history` takes that name from the session's alias. A turn with inputs and no prompt (None) loads
no `context_<n>`.

Each turn has its own budget unless `budget="session"`, which makes sub-calls, tokens, cost and time (everything
but iterations, which stay per turn) count over the whole session. A session left unused for `idle_timeout`
seconds releases its sandbox; using it afterwards raises `SessionExpiredError`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Literal

from rlm_plugins.core.budget import Budget
from rlm_plugins.core.engine import Engine, Run
from rlm_plugins.core.ports import Step
from rlm_plugins.core.result import RLMResult
from rlm_plugins.errors import ConfigurationError, SessionBusyError, SessionExpiredError
from rlm_plugins.repl.base import Sandbox

DEFAULT_QUERY = (
    "The user's prompt is in the variable `context`. Read it in the REPL and do what it asks; answer with FINAL(...)."
)


class Session:
    """A multi-turn RLM conversation over one sandbox.

    Args:
        engine: the engine whose ports and limits every turn uses.
        idle_timeout: seconds without a turn after which the sandbox is released; None keeps it until `close()`.
        budget: "turn" (each turn gets the engine's limits afresh) or "session" (one budget for every turn).
        aliases: what `context` and `history` name: "newest" (this turn's input, the previous turn's messages) or
            "first" (`context_0` and `history_0`, as the official `rlms` package binds them).

    Examples:
        >>> with Session(engine) as chat:  # doctest: +SKIP
        ...     chat.completion(report, root_prompt="Which supplier is mentioned most?").response
        ...     chat.completion(invoices, root_prompt="Which of them sent these invoices?").response
    """

    def __init__(
        self,
        engine: Engine,
        *,
        idle_timeout: float | None = None,
        budget: Literal["turn", "session"] = "turn",
        aliases: Literal["newest", "first"] = "newest",
    ) -> None:
        if budget not in ("turn", "session"):
            raise ConfigurationError(f"budget={budget!r}: pass 'turn' (the default) or 'session'")
        if aliases not in ("newest", "first"):
            raise ConfigurationError(f"aliases={aliases!r}: pass 'newest' (the default) or 'first'")
        self.aliases = aliases
        if idle_timeout is not None and idle_timeout <= 0:
            raise ConfigurationError(f"idle_timeout={idle_timeout!r} must be positive seconds, or None")
        self.engine = engine
        self.idle_timeout = idle_timeout
        self.budget = Budget(engine.limits) if budget == "session" else None
        self.sandbox: Sandbox | None = None
        self.turns = 0
        self.run: Run | None = None
        self._history: list[dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self._gone: str | None = None
        self._timer: threading.Timer | None = None

    def completion(
        self, prompt: Any, root_prompt: str | None = None, *, inputs: Mapping[str, Any] | None = None
    ) -> RLMResult:
        """One turn: `prompt` goes into the REPL as `context_<n>` (and `context`), `inputs` by their names;
        `root_prompt` is the question."""
        run = self._begin(prompt, root_prompt, inputs)
        try:
            result = run.run_sync()
        finally:
            kept = self._end(run)
            if kept is not None:
                self._keep(*kept)
        return result

    async def acompletion(
        self, prompt: Any, root_prompt: str | None = None, *, inputs: Mapping[str, Any] | None = None
    ) -> RLMResult:
        """The async twin of `completion`."""
        run = self._begin(prompt, root_prompt, inputs)
        try:
            result = await run.run_async()
        finally:
            kept = self._end(run)
            if kept is not None:
                await self._akeep(*kept)
        return result

    def _keep(self, sandbox: Sandbox, name: str, messages: list[dict[str, Any]]) -> None:
        """Store the finished turn's messages as `history_<n>` in the REPL (the sync path)."""
        try:
            sandbox.load(name, messages)
        except Exception as exc:  # the sandbox died: the session is over
            self._release(f"the session's sandbox failed storing {name}: {exc}")

    async def _akeep(self, sandbox: Sandbox, name: str, messages: list[dict[str, Any]]) -> None:
        """The async twin of `_keep`."""
        try:
            await sandbox.aload(name, messages)
        except Exception as exc:  # the sandbox died: the session is over
            self._release(f"the session's sandbox failed storing {name}: {exc}")

    def cancel(self) -> None:
        """Cancel the turn in progress, if any (it ends with finish_reason="cancelled")."""
        run = self.run
        if run is not None:
            run.cancel()

    def close(self) -> None:
        """Cancel the turn in progress and release the sandbox; the session cannot be used afterwards."""
        self._release("the session was closed")

    async def aclose(self) -> None:
        """The async twin of `close`."""
        import asyncio

        await asyncio.to_thread(self.close)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def last_messages(self) -> list[dict[str, Any]] | None:
        """The latest turn's messages (the REPL's newest `history_<n>`); None before the first turn."""
        return self._history

    def attach(
        self, sandbox: Sandbox, *, turns: int | None = None, history: list[dict[str, Any]] | None = None
    ) -> None:
        """Give the session its sandbox before its first turn, e.g. one already holding a saved conversation's
        variables; `turns` and `history` continue that conversation (the next turn is number `turns`; `history`,
        the messages of turn `turns - 1`, becomes `history_<turns - 1>`)."""
        with self._lock:
            if self._gone is not None:
                raise SessionExpiredError(f"{self._gone}; start a new session")
            if self.run is not None or self.sandbox is not None:
                raise SessionBusyError("this session already has a sandbox; attach one before its first turn")
            self.sandbox = sandbox
            if turns is not None:
                self.turns, self._history = turns, history
        if turns and history is not None:
            sandbox.load(f"history_{turns - 1}", history)

    def _begin(self, prompt: Any, root_prompt: str | None, inputs: Mapping[str, Any] | None = None) -> Run:
        with self._lock:
            if self._gone is not None:
                raise SessionExpiredError(f"{self._gone}; its REPL variables are gone. Start a new session")
            if self.run is not None:
                raise SessionBusyError("this session is running a turn; wait for it (one turn at a time)")
            if self._timer is not None:
                self._timer.cancel()
            n = self.turns
            if self.sandbox is None:
                engine = self.engine
                self.sandbox = engine.sandbox_factory(
                    max_output_chars=engine.max_output_chars, final_fields=engine.final_fields
                )
            inputs = dict(inputs or {})
            first = self.aliases == "first"
            loads, aliases = turn_inputs(n, prompt, inputs, first=first, has_history=self._history is not None)
            query = (root_prompt or DEFAULT_QUERY) + turn_note(n, first)
            budget = self.budget or Budget(self.engine.limits)
            self.run = Run(
                self.engine, budget, query, prompt, inputs, loads=loads, aliases=aliases, sandbox=self.sandbox
            )
            return self.run

    def _end(self, run: Run) -> tuple[Sandbox, str, Any] | None:
        """Close the turn; returns (sandbox, `history_<n>`, messages) to store, unless the sandbox is gone."""
        with self._lock:
            self.run = None
            self.turns += 1
            result = run.result
            self._history = turn_messages(run.query, run.history, result)
            if self._gone is None:
                self._gone = _lost(run, result, self.sandbox, self.turns - 1)
            if self.idle_timeout is not None and self._gone is None:
                self._timer = threading.Timer(self.idle_timeout, self._release, (_idle(self.idle_timeout),))
                self._timer.daemon = True
                self._timer.start()
            sandbox = self.sandbox
        if self._gone is not None or sandbox is None:
            self._release(self._gone or "the session's sandbox is gone")
            return None
        return sandbox, f"history_{self.turns - 1}", self._history

    def _release(self, why: str) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._gone = self._gone or why
            run, sandbox, self.sandbox = self.run, self.sandbox, None
        if run is not None:
            run.cancel()
        if sandbox is not None:
            sandbox.close()


def turn_inputs(
    n: int, prompt: Any, inputs: Mapping[str, Any] | None = None, *, first: bool = False, has_history: bool = False
) -> tuple[list[tuple[str, Any]], dict[str, str]]:
    """What turn `n` loads into the REPL and the aliases it binds: `prompt` as `context_<n>` (unless the turn has
    only named `inputs`), the `inputs` by name, `context` and, after a first turn, `history` (the newest, or with
    `first` the first turn's)."""
    inputs = dict(inputs or {})
    fresh = prompt is None and bool(inputs)
    loads: list[tuple[str, Any]] = [] if fresh else [(f"context_{n}", prompt)]
    loads.extend(inputs.items())
    aliases = {} if fresh else {"context": f"context_{0 if first else n}"}
    if has_history and "history" not in inputs:
        aliases["history"] = f"history_{0 if first else n - 1}"
    return loads, aliases


def turn_messages(query: str, history: list[Step], result: RLMResult | None) -> list[dict[str, Any]]:
    """A finished turn as chat messages (the shape of `history_<n>` in the official package)."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": query}]
    for step in history:
        messages.append({"role": "assistant", "content": step.response})
        outputs = [run.result.stdout + run.result.stderr + (str(run.result.error or "")) for run in step.runs]
        if outputs or step.notes:
            messages.append({"role": "user", "content": "\n".join([*outputs, *step.notes])})
    if result is not None:
        messages.append({"role": "assistant", "content": f"FINAL: {result.response}"})
    return messages


def _lost(run: Run, result: RLMResult | None, sandbox: Sandbox | None, turn: int) -> str | None:
    """Why a turn left the session without its REPL, if it did."""
    if result is not None and result.finish_reason == "sandbox_error":
        return f"the session's sandbox failed in turn {turn}"
    if run.cancelled and not callable(getattr(sandbox, "cancel", None)):
        return f"turn {turn} was cancelled, which stopped the session's sandbox"
    return None


def turn_note(n: int, first: bool = False) -> str:
    """The note turn `n`'s question gets: which REPL names hold the earlier turns (empty for the first)."""
    if n == 0:
        return ""
    earlier = "`context_0`" if n == 1 else f"`context_0` ... `context_{n - 1}`"
    if first:
        return (
            f"\n\nThis is turn {n + 1} of a conversation in one REPL: this turn's input is `context_{n}`; earlier "
            f"inputs are {earlier} (`context` is `context_0`); `history_<k>` holds turn k's messages and answer "
            "(`history` is `history_0`). Variables you defined in earlier turns still exist."
        )
    return (
        f"\n\nThis is turn {n + 1} of a conversation in one REPL: `context` is this turn's input (`context_{n}`); "
        f"earlier inputs are {earlier}; `history` (= `history_{n - 1}`) holds the previous turn's messages and "
        "answer, and `history_<k>` every earlier turn's. Variables you defined in earlier turns still exist."
    )


def _idle(seconds: float) -> str:
    return f"the session was idle for more than idle_timeout={seconds:g}s and released its sandbox"
