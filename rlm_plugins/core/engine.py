"""The engine and its runs: the RLM loop, written once as an I/O-free step generator.

`Run.steps()` yields the typed operations of `rlm_plugins.core.steps` and receives their results, the way httpx's
auth flows do; the two drivers in `rlm_plugins.core.drivers` only perform them. Everything a run knows (history,
budget, finish reason) lives on the `Run`, so a run paused between operations can be saved as plain data and
resumed (`rlm_plugins.core.snapshot`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Generator, Mapping
from typing import Any

from rlm_plugins.core._lifecycle import RunLifecycle
from rlm_plugins.core.budget import Budget, Limits
from rlm_plugins.core.drivers import adrive, drive
from rlm_plugins.core.events import (
    CodeExecuted,
    FinalReached,
    Observer,
    RootStep,
    RunFinished,
    RunStarted,
    TurnFinished,
    TurnStarted,
    emit,
)
from rlm_plugins.core.feedback import model_error
from rlm_plugins.core.final_checks import final_problem
from rlm_plugins.core.parsing import FinalVar
from rlm_plugins.core.ports import Action, CodeRun, Policy, RunState, Step, SubModel, as_completion
from rlm_plugins.core.result import RLMResult
from rlm_plugins.core.steps import Act, Exec, Extract, Operation, Start
from rlm_plugins.core.subcalls import ON_LLM_BUDGET, SubCalls, SubFailure, failed_call_text
from rlm_plugins.core.variables import describe_tools, describe_variable, is_small
from rlm_plugins.errors import ConfigurationError, ModelError, RunCancelledError, SandboxError
from rlm_plugins.repl._values import as_json_text, clean_text
from rlm_plugins.repl.base import RESERVED_NAMES, ExecResult, FinalAnswer, Sandbox

SandboxFactory = Callable[..., Sandbox]
"""Called as factory(max_output_chars=..., final_fields=...) for each run; returns a new, unstarted sandbox."""

FinalValidator = Callable[[FinalAnswer], tuple[Any, str | None]]
"""Checks a final answer: returns (value, None) to accept it, or (None, message for the model) to refuse it."""


class Engine:
    """Runs RLMs over the three ports. One engine serves many runs at once; each run gets its own sandbox.

    Args:
        policy: the root model.
        sub_model: what `llm_query` calls.
        sandbox_factory: makes a new sandbox per run (see `SandboxFactory`).
        limits: iteration, sub-call, depth, time, token and cost limits.
        tools: host functions user code may call by name.
        sub_tools: the tools of rlm_query children (depth >= 1) instead of `tools`; None gives them `tools`.
        observers: callables that receive every event of every run.
        final_fields: output field names for SUBMIT(**fields) (DSPy); None means FINAL(value).
        final_validator: checks a final answer before the run accepts it.
        refuse_premature_final: refuse a literal final answer typed in before the model has seen any output of
            the run, or after output of the same reply it has not read (see `rlm_plugins.core.final_checks`).
        on_llm_budget: what running out of `max_llm_calls` does: "end_run" (refused calls get an error string
            and the run ends after the step) or "raise_in_code" (`SubCallBudgetError` is raised in the model's
            code, and the run goes on so the model can still answer; `dspy.RLM`'s behaviour).
        sub_failure: what a failed sub-call gives the model's code (see `rlm_plugins.core.subcalls.SubFailure`);
            by default every failure is an error string in its slot.
    """

    def __init__(
        self,
        policy: Policy,
        sub_model: SubModel,
        sandbox_factory: SandboxFactory,
        *,
        limits: Limits | None = None,
        max_output_chars: int = 10_000,
        max_concurrency: int = 16,
        exec_timeout: float = 300.0,
        tools: Mapping[str, Callable[..., Any]] | None = None,
        observers: list[Observer] | None = None,
        final_fields: list[str] | None = None,
        final_validator: FinalValidator | None = None,
        refuse_premature_final: bool = True,
        sub_tools: Mapping[str, Callable[..., Any]] | None = None,
        on_llm_budget: str = "end_run",
        sub_failure: SubFailure | None = None,
    ) -> None:
        self.policy = policy
        self.sub_model = sub_model
        self.sandbox_factory = sandbox_factory
        self.limits = limits or Limits()
        self.max_output_chars = max_output_chars
        self.max_concurrency = max_concurrency
        self.exec_timeout = exec_timeout
        self.tools = _checked_tools(tools)
        self.sub_tools = None if sub_tools is None else _checked_tools(sub_tools)
        self.observers = list(observers or [])
        self.final_fields = final_fields
        self.final_validator = final_validator
        self.refuse_premature_final = refuse_premature_final
        if on_llm_budget not in ON_LLM_BUDGET:
            raise ConfigurationError(f"on_llm_budget={on_llm_budget!r}: pass one of {list(ON_LLM_BUDGET)}")
        self.on_llm_budget = on_llm_budget
        self.sub_failure: SubFailure = sub_failure or failed_call_text

    def new_run(
        self,
        query: str,
        context: Any = None,
        inputs: Mapping[str, Any] | None = None,
        *,
        observers: list[Observer] | None = None,
        budget: Budget | None = None,
    ) -> Run:
        """A run ready to be driven by `drive` / `adrive` (`rlm_plugins.core.drivers`)."""
        observers = [*self.observers, *(observers or [])]
        return Run(self, budget or Budget(self.limits), query, context, inputs, observers=observers)

    def resume(self, data: Mapping[str, Any], *, sandbox: Sandbox | None = None) -> Run:
        """The run a `Paused.to_dict()` described, reconnected to its sandbox; drive it to continue.

        Raises:
            SandboxUnavailableError: the sandbox cannot be reached from here (a local sandbox of another process).
        """
        from rlm_plugins.core.snapshot import restore

        return restore(self, data, sandbox)

    def run(self, query: str, context: Any = None, inputs: Mapping[str, Any] | None = None, **kw: Any) -> RLMResult:
        """Run to completion, synchronously. Safe inside a running event loop and from many threads."""
        return self.new_run(query, context, inputs, **kw).run_sync()

    async def arun(
        self, query: str, context: Any = None, inputs: Mapping[str, Any] | None = None, **kw: Any
    ) -> RLMResult:
        """Run to completion without blocking the event loop."""
        return await self.new_run(query, context, inputs, **kw).run_async()


class Run(RunLifecycle):
    """One run of the loop: its query and inputs, sandbox, history, and the step generator that drives it.

    Args:
        engine: the engine whose ports the run uses.
        budget: the budget of the run's tree (children share it).
        query: what the root model is asked.
        context: the long input, loaded into the REPL as `context`; None loads nothing.
        inputs: other REPL variables (DSPy input fields).
        loads: what `Start` loads instead of `context` and `inputs` (a session's `context_<n>`, `history_<n>`).
        aliases: names bound to loaded variables after loading (a session's `context` -> `context_<n>`).
        sandbox: a sandbox the run uses and does not own (a session's); None makes one from the engine.
    """

    def __init__(
        self,
        engine: Engine,
        budget: Budget,
        query: str,
        context: Any = None,
        inputs: Mapping[str, Any] | None = None,
        *,
        depth: int = 0,
        parent: Run | None = None,
        observers: list[Observer] | None = None,
        loads: list[tuple[str, Any]] | None = None,
        aliases: Mapping[str, str] | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        super().__init__(sandbox)
        self.engine = engine
        self.budget = budget
        self.depth = depth
        self.parent = parent
        self.parent_id = parent.run_id if parent is not None else None
        self.run_id = uuid.uuid4().hex[:12]
        self.query = query
        self.context = context
        self.inputs = dict(inputs or {})
        self.observers = observers if observers is not None else list(engine.observers)
        self.subcalls = SubCalls(self, engine.sub_model, engine.max_concurrency)
        self.final_fields = engine.final_fields if depth == 0 else None
        if loads is None:
            loads = ([("context", context)] if context is not None else []) + list(self.inputs.items())
        self.loads = loads
        self.aliases = dict(aliases or {})
        self.history: list[Step] = []
        self.state: RunState | None = None
        self.final: FinalAnswer | None = None
        self.answer: Any = None
        self.reason: str | None = None
        self.error: str | None = None
        self.started = time.perf_counter()

    def child(self, query: str = "", context: Any = None) -> Run | None:
        """A child run at depth + 1 sharing this tree's budget, or None at the maximum depth."""
        if self.depth + 1 >= max(1, self.budget.limits.max_depth):
            return None
        return Run(
            self.engine, self.budget, query, context, depth=self.depth + 1, parent=self, observers=self.observers
        )

    def run_sync(self) -> RLMResult:
        """Drive this run to its end synchronously."""
        return drive(self)  # type: ignore[return-value]

    async def run_async(self) -> RLMResult:
        """Drive this run to its end without blocking the event loop."""
        return await adrive(self)  # type: ignore[return-value]

    def new_sandbox(self) -> Sandbox:
        return self.engine.sandbox_factory(
            max_output_chars=self.engine.max_output_chars, final_fields=self.final_fields
        )

    def tools(self, sync: bool) -> dict[str, Any]:
        """The functions the REPL may call during this run: the engine's tools and the sub-call built-ins."""
        builtins = self.subcalls.sync_tools() if sync else self.subcalls.async_tools()
        return {**self.host_tools, **builtins}

    @property
    def host_tools(self) -> dict[str, Any]:
        """The engine's tools at this run's depth (`Engine.sub_tools` below the root, when given)."""
        engine = self.engine
        return engine.tools if self.depth == 0 or engine.sub_tools is None else engine.sub_tools

    def steps(self) -> Generator[Operation, Any, RLMResult]:
        """The loop itself: yields operations, receives their results, returns the RLMResult.

        A restored run (`state` already set) continues where it paused: before the next `Act`, or before
        `Extract` when its finish reason is already known.
        """
        engine, budget = self.engine, self.budget
        if self.state is None:
            try:
                infos = yield Start(tuple(self.loads), tuple(self.aliases.items()))
            except RunCancelledError:
                self.reason = "cancelled"
                return self._end()
            self.state = self._initial_state(infos)
        state, history = self.state, self.history
        while self.reason is None:
            limit = "cancelled" if self.cancelled else budget.exhausted() or self.subcalls.refused
            if not limit and len(history) >= budget.limits.max_iterations:
                limit = "max_iterations"
            limit = limit or self.subcalls.reserve_turn()
            if limit:
                self.reason = limit
                break
            state.iteration = len(history) + 1
            t0 = time.perf_counter()
            emit(self.observers, TurnStarted(self.run_id, self.depth, state.iteration))
            try:
                action: Action = yield Act(state)
            except ModelError as exc:
                if self.cancelled:
                    self.reason = "cancelled"
                    break
                exc.partial = self._result("error", str(exc))
                raise
            budget.record(action.model or _model_name(engine.policy), action.usage)
            step = Step(state.iteration, action.reasoning, action.response, notes=list(action.notes))
            history.append(step)
            emit(self.observers, RootStep(self.run_id, self.depth, step.iteration, action, time.perf_counter() - t0))
            self.reason = yield from self._act_on(action, step)
            step.duration = time.perf_counter() - t0
            emit(self.observers, TurnFinished(self.run_id, self.depth, step.iteration, step.duration))
            self.reason = self.reason or _error_streak(history, budget.limits.max_errors)
        refused = self.subcalls.reserve_turn() if self.final is None and self.reason != "cancelled" else None
        if refused:
            self.error = f"the extract step was not run: {refused}"
        elif self.final is None and self.reason != "cancelled":
            state.iteration = len(history)
            try:
                completion = as_completion((yield Extract(state)))
                budget.record(completion.model or _model_name(engine.policy), completion.usage)
                self.answer = completion.text
            except ModelError as exc:
                self.error = f"the extract step failed: {exc}"
        return self._end()

    def _end(self) -> RLMResult:
        if self.final is not None:
            emit(self.observers, FinalReached(self.run_id, self.depth, len(self.history), self.answer, self.reason))
        result = self._result(self.reason)
        emit(self.observers, RunFinished(self.run_id, self.depth, result))
        return result

    def _initial_state(self, infos: list[Any]) -> RunState:
        engine, limits = self.engine, self.budget.limits
        variables = [
            describe_variable(name, value, info) for (name, value), info in zip(self.loads, infos, strict=True)
        ]
        state = RunState(
            query=self.query,
            variables=variables,
            tools=describe_tools(self.host_tools),
            history=self.history,
            iteration=0,
            max_iterations=limits.max_iterations,
            depth=self.depth,
            max_depth=limits.max_depth,
            max_output_chars=engine.max_output_chars,
            final_fields=self.final_fields,
            inputs={k: v for k, v in self.inputs.items() if is_small(v)},
        )
        sandbox = self.sandbox
        emit(
            self.observers,
            RunStarted(
                self.run_id,
                self.depth,
                self.query,
                variables,
                self.parent_id,
                getattr(sandbox, "kind", ""),
                getattr(sandbox, "isolation", ""),
            ),
        )
        return state

    def _act_on(self, action: Action, step: Step) -> Generator[Operation, Any, str | None]:
        """Run an action's code blocks in order; the finish reason once one ends the run, else None."""
        engine, budget = self.engine, self.budget
        if not action.code:
            if not action.has_final:
                if not action.notes:
                    step.notes.append(model_error("Your reply had no ```repl code block and no final answer."))
                return None
            if not isinstance(action.final, FinalVar):
                return self._accept(FinalAnswer(action.final), step, None)
            action = Action(code=[f"FINAL_VAR({action.final.name!r})"])
        for code in action.code:
            if self.cancelled:
                return "cancelled"
            if not code or not code.strip():
                step.notes.append(model_error("A code block was empty; write the code you want to run."))
                continue
            halt = self.subcalls.may_exec()
            if halt:
                step.notes.append(model_error(f"The code was not run: the run is over ({halt})."))
                return halt
            left = budget.time_left()
            timeout = engine.exec_timeout if left is None else min(engine.exec_timeout, left)
            try:
                result: ExecResult = yield Exec(code, timeout)
            except SandboxError as exc:
                if self.cancelled:
                    return "cancelled"
                step.notes.append(model_error(f"The sandbox failed and the REPL state is lost: {exc}"))
                return "sandbox_error"
            step.runs.append(CodeRun(code, result))
            emit(self.observers, CodeExecuted(self.run_id, self.depth, step.iteration, code, result))
            if self.cancelled:
                return "cancelled"
            if result.final is not None and self._accept(result.final, step, code):
                return "final"
        return None

    def _accept(self, final: FinalAnswer, step: Step, code: str | None) -> str | None:
        refused = final_problem(self.state, step, code, refuse_premature=self.engine.refuse_premature_final)
        if refused:
            step.notes.append(model_error(refused))
            return None
        validator = self.engine.final_validator if self.depth == 0 else None
        if validator is None:
            value = final.fields if final.fields and final.value is None else final.value
        else:
            value, problem = validator(final)
            if problem:
                step.notes.append(model_error(problem))
                return None
        self.final, self.answer = final, value
        return "final"

    def _result(self, reason: str | None, error: str | None = None) -> RLMResult:
        return RLMResult(
            response=_as_text(self.answer),
            answer=self.answer,
            finish_reason=reason or "max_iterations",
            steps=self.history,
            usage=self.budget.usage_snapshot(),
            execution_time=time.perf_counter() - self.started,
            fields=self.final.fields if self.final is not None else None,
            run_id=self.run_id,
            depth=self.depth,
            error=error or self.error,
        )


def _checked_tools(tools: Mapping[str, Callable[..., Any]] | None) -> dict[str, Callable[..., Any]]:
    tools = dict(tools or {})
    clash = sorted(RESERVED_NAMES & set(tools))
    if clash:
        raise ConfigurationError(f"tool names {clash} are reserved by the REPL; rename those tools")
    bad = [name for name in tools if not name.isidentifier()]
    if bad:
        raise ConfigurationError(f"tool names {bad} are not Python identifiers; rename those tools")
    return tools


def _error_streak(history: list[Step], max_errors: int | None) -> str | None:
    """ "max_errors" once the last `max_errors` turns each ran code that failed."""
    if max_errors is None or len(history) < max_errors:
        return None
    recent = history[-max_errors:]
    return "max_errors" if all(any(not run.result.ok for run in step.runs) for step in recent) else None


def _model_name(policy: Any) -> str:
    return str(getattr(policy, "model", None) or "root")


def _as_text(answer: Any) -> str:
    if answer is None:
        return ""
    return clean_text(answer) if isinstance(answer, str) else as_json_text(answer)
