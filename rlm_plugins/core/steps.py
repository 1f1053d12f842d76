"""The operations a run yields: the engine's public step protocol.

A run is an I/O-free generator (`Run.steps()`). It yields one operation at a time and receives what performing
it gave (or has the error thrown into it):

| operation | the driver ... | and sends back |
| --- | --- | --- |
| `Start(loads, aliases)` | creates the sandbox (unless the run has one: a session), loads each value | the load infos |
| `Act(state)` | asks the policy for the next action | an `Action` |
| `Exec(code, timeout)` | runs the code in the sandbox, serving the run's tools | an `ExecResult` |
| `Extract(state)` | asks the policy for a last-chance answer | a `Completion` or str |

`rlm_plugins.core.drivers.drive` and `adrive` are the only two drivers. Both take an optional `PauseHook`, called
before each operation: when it returns `PAUSE`, the driver returns a `Paused` instead of performing it, and the
run resumes later from the same operation (`drive(paused.run)`). A run paused before `Act` or `Extract` can be
turned into plain data (`Paused.to_dict()`) and resumed from it, in another process when the sandbox can be
reconnected (`Engine.resume`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from rlm_plugins.core.ports import RunState

if TYPE_CHECKING:
    from rlm_plugins.core.engine import Run


@dataclass(frozen=True)
class Start:
    """Create (or reuse) the run's sandbox and load `loads` into it, then bind each alias to its target."""

    loads: tuple[tuple[str, Any], ...]
    aliases: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Act:
    """Ask the policy (the root model) for its next action on `state`."""

    state: RunState


@dataclass(frozen=True)
class Exec:
    """Run `code` in the sandbox with the run's tools, for at most `timeout` seconds."""

    code: str
    timeout: float | None = None


@dataclass(frozen=True)
class Extract:
    """Ask the policy for a final answer from what the run has seen (the budget ran out)."""

    state: RunState


Operation = Start | Act | Exec | Extract
"""Every operation a run may yield."""

PAUSE: Literal["pause"] = "pause"
"""What a pause hook returns to stop the run before an operation."""

PauseHook = Callable[["Run", Operation], str | None]
"""Called before each operation; returning `PAUSE` makes the driver return a `Paused` instead of performing it."""


@dataclass
class Paused:
    """A run stopped before `op`; drive `run` again to perform it and continue.

    `pending` is the caller's own data about why it paused (for example the tool calls it handed out, with their
    ids); it travels with `to_dict()`.
    """

    run: Run
    op: Operation
    pending: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, ttl: float | None = 600.0) -> dict[str, Any]:
        """The paused run as JSON-serialisable data: query, history, budget spent, pending calls, the sandbox.

        The sandbox stays alive for `ttl` seconds (it is the REPL state); `Engine.resume(data)` reconnects to it.
        From then on the data is the run: continue it through `Engine.resume`, not by driving `run` again.
        """
        from rlm_plugins.core.snapshot import snapshot

        return snapshot(self.run, self.op, self.pending, ttl)
