"""The framework-free RLM engine: the loop, its ports, budgets, events, sessions, and the step protocol.

An `Engine` runs RLMs over three ports (`Policy`: the root model; `SubModel`: what `llm_query` calls; a sandbox
factory). A `Run` is one question answered by that loop. The loop is an I/O-free generator that yields typed
operations, the engine's public protocol:

    Start(loads, aliases)  create or reuse the sandbox and load the inputs     -> load infos
    Act(state)             ask the root model for its next action              -> Action
    Exec(code, timeout)    run code in the sandbox, serving tools              -> ExecResult
    Extract(state)         ask for a last-chance answer (the budget ran out)   -> Completion | str

`drive(run, pause=None)` and `adrive(run, pause=None)` are its only two drivers. A pause hook, called before
each operation, may return `PAUSE`; the driver then returns a `Paused` instead of performing it:

    from rlm_plugins.core import PAUSE, Act, MemorySessionStore, drive

    def after_two_turns(run, op):
        return PAUSE if isinstance(op, Act) and len(run.history) == 2 else None

    paused = drive(engine.new_run("Summarise the report", report), pause=after_two_turns)
    store = MemorySessionStore()              # or RedisSessionStore("redis://...") across replicas
    key = store.save(paused, ttl=600)         # JSON data; the sandbox is kept alive meanwhile
    result = drive(store.resume(engine, key)) # a paused run resumes exactly once

`run.cancel()` (any thread), task cancellation and KeyboardInterrupt end a run and its `rlm_query` children
promptly; the result so far has finish_reason="cancelled".

A `Session` keeps one sandbox across turns (`session.completion(prompt, root_prompt)`): turn n's input is
`context_<n>` (and `context`), earlier turns' messages are `history_<n>` (and `history`), variables persist.
"""

from rlm_plugins.core.budget import Budget, Limits
from rlm_plugins.core.drivers import adrive, drive
from rlm_plugins.core.engine import Engine, Run
from rlm_plugins.core.ports import Action, Completion, Policy, RunState, Step, SubModel, Usage
from rlm_plugins.core.result import RLMResult
from rlm_plugins.core.session import Session
from rlm_plugins.core.steps import PAUSE, Act, Exec, Extract, Operation, Paused, PauseHook, Start
from rlm_plugins.core.store import MemorySessionStore, RedisSessionStore, SessionStore

__all__ = [
    "PAUSE",
    "Act",
    "Action",
    "Budget",
    "Completion",
    "Engine",
    "Exec",
    "Extract",
    "Limits",
    "MemorySessionStore",
    "Operation",
    "PauseHook",
    "Paused",
    "Policy",
    "RLMResult",
    "RedisSessionStore",
    "Run",
    "RunState",
    "Session",
    "SessionStore",
    "Start",
    "Step",
    "SubModel",
    "Usage",
    "adrive",
    "drive",
]
