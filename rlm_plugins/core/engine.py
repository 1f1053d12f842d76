"""The RLM loop, written once as an I/O-free step generator with two thin drivers (`run` and `arun`).

The generator yields operations ("start the sandbox", "ask the policy", "run this code", "extract", "close")
and receives their results, the way httpx's auth flows do; `Run.run_sync` and `Run.run_async` only perform
them. Neither driver wraps the other, so sync runs work inside a running event loop and async runs never block
one.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

from rlm_plugins.core.budget import Budget, Limits
from rlm_plugins.core.events import CodeExecuted, FinalReached, Observer, RootStep, RunFinished, RunStarted, emit
from rlm_plugins.core.feedback import model_error
from rlm_plugins.core.final_checks import final_problem
from rlm_plugins.core.parsing import FinalVar
from rlm_plugins.core.ports import (
    Action,
    CodeRun,
    Policy,
    RunState,
    Step,
    SubModel,
    as_completion,
)
from rlm_plugins.core.result import RLMResult
from rlm_plugins.core.subcalls import SubCalls
from rlm_plugins.core.variables import describe_tools, describe_variable, is_small
from rlm_plugins.errors import ConfigurationError, ModelError, SandboxError
from rlm_plugins.repl._values import as_json_text, clean_text
from rlm_plugins.repl.base import RESERVED_NAMES, ExecResult, FinalAnswer, Sandbox

SandboxFactory = Callable[..., Sandbox]
"""Called as factory(max_output_chars=..., final_fields=...) for each run; returns a new, unstarted sandbox."""

FinalValidator = Callable[[FinalAnswer], tuple[Any, str | None]]
"""Checks a final answer: returns (value, None) to accept it, or (None, message for the model) to refuse it."""


@dataclass
class _Op:
    kind: str
    arg: Any = None
    timeout: float | None = None


class Engine:
    """Runs RLMs over the three ports. One engine serves many runs at once; each run gets its own sandbox.

    Args:
        policy: the root model.
        sub_model: what `llm_query` calls.
        sandbox_factory: makes a new sandbox per run (see `SandboxFactory`).
        limits: iteration, sub-call, depth, time, token and cost limits.
        tools: host functions user code may call by name.
        observers: callables that receive every event of every run.
        final_fields: output field names for SUBMIT(**fields) (DSPy); None means FINAL(value).
        final_validator: checks a final answer before the run accepts it.
        refuse_premature_final: refuse a literal final answer typed in before the model has seen any output of
            the run, or after output of the same reply it has not read (see `rlm_plugins.core.final_checks`).
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
    ) -> None:
        self.policy = policy
        self.sub_model = sub_model
        self.sandbox_factory = sandbox_factory
        self.limits = limits or Limits()
        self.max_output_chars = max_output_chars
        self.max_concurrency = max_concurrency
        self.exec_timeout = exec_timeout
        self.tools = dict(tools or {})
        clash = sorted(RESERVED_NAMES & set(self.tools))
        if clash:
            raise ConfigurationError(f"tool names {clash} are reserved by the REPL; rename those tools")
        bad = [name for name in self.tools if not name.isidentifier()]
        if bad:
            raise ConfigurationError(f"tool names {bad} are not Python identifiers; rename those tools")
        self.observers = list(observers or [])
        self.final_fields = final_fields
        self.final_validator = final_validator
        self.refuse_premature_final = refuse_premature_final

    def new_run(
        self,
        query: str,
        context: Any = None,
        inputs: Mapping[str, Any] | None = None,
        *,
        observers: list[Observer] | None = None,
    ) -> Run:
        """A run ready to be driven by `run_sync` or `run_async`."""
        budget = Budget(self.limits)
        return Run(self, budget, 0, None, query, context, dict(inputs or {}), [*self.observers, *(observers or [])])

    def run(self, query: str, context: Any = None, inputs: Mapping[str, Any] | None = None, **kw: Any) -> RLMResult:
        """Run to completion, synchronously. Safe inside a running event loop and from many threads."""
        run = self.new_run(query, context, inputs, **kw)
        return run.run_sync(query, context)

    async def arun(
        self, query: str, context: Any = None, inputs: Mapping[str, Any] | None = None, **kw: Any
    ) -> RLMResult:
        """Run to completion without blocking the event loop."""
        run = self.new_run(query, context, inputs, **kw)
        return await run.run_async(query, context)


class Run:
    """One run of the loop: its sandbox, history, and the step generator that drives it."""

    def __init__(
        self,
        engine: Engine,
        budget: Budget,
        depth: int,
        parent_id: str | None,
        query: str,
        context: Any,
        inputs: dict[str, Any],
        observers: list[Observer],
    ) -> None:
        self.engine = engine
        self.budget = budget
        self.depth = depth
        self.parent_id = parent_id
        self.run_id = uuid.uuid4().hex[:12]
        self.inputs = inputs
        self.observers = observers
        self.subcalls = SubCalls(self, engine.sub_model, engine.max_concurrency)
        self.final_fields = engine.final_fields if depth == 0 else None
        self.sandbox: Sandbox | None = None

    def child(self) -> Run | None:
        """A child run at depth + 1 sharing this tree's budget, or None at the maximum depth."""
        if self.depth + 1 >= max(1, self.budget.limits.max_depth):
            return None
        return Run(self.engine, self.budget, self.depth + 1, self.run_id, "", None, {}, self.observers)

    def run_sync(self, query: str, context: Any) -> RLMResult:
        flow, value, error = self.steps(query, context), None, None
        try:
            while True:
                try:
                    op = flow.throw(error) if error is not None else flow.send(value)
                except StopIteration as stop:
                    return stop.value
                value, error = None, None
                try:
                    value = self._do(op)
                except Exception as exc:
                    error = exc
        finally:
            self.subcalls.stop_children()
            if self.sandbox is not None:
                self.sandbox.close()

    async def run_async(self, query: str, context: Any) -> RLMResult:
        flow, value, error = self.steps(query, context), None, None
        try:
            while True:
                try:
                    op = flow.throw(error) if error is not None else flow.send(value)
                except StopIteration as stop:
                    return stop.value
                value, error = None, None
                try:
                    value = await self._ado(op)
                except Exception as exc:
                    error = exc
        finally:
            await self.subcalls.astop_children()
            if self.sandbox is not None:
                await self.sandbox.aclose()

    def perform(self, op: _Op) -> Any:
        """Perform one operation yielded by `steps()`, for drivers that pause between operations (ChatRLM's tools)."""
        return self._do(op)

    async def aperform(self, op: _Op) -> Any:
        """The async twin of `perform`."""
        return await self._ado(op)

    def _do(self, op: _Op) -> Any:
        sandbox, policy = self.sandbox, self.engine.policy
        if op.kind == "start":
            sandbox = self.sandbox = self._new_sandbox()
            infos = [sandbox.load(name, value) for name, value in op.arg]  # a load starts the sandbox as it stages
            sandbox.start()
            return infos
        if op.kind == "act":
            return policy.act(op.arg)
        if op.kind == "exec":
            return sandbox.execute(op.arg, tools=self._tools(sync=True), timeout=op.timeout)
        return policy.extract(op.arg)

    async def _ado(self, op: _Op) -> Any:
        sandbox, policy = self.sandbox, self.engine.policy
        if op.kind == "start":
            sandbox = self.sandbox = self._new_sandbox()
            infos = [await sandbox.aload(name, value) for name, value in op.arg]
            await sandbox.astart()
            return infos
        if op.kind == "act":
            return await policy.aact(op.arg)
        if op.kind == "exec":
            return await sandbox.aexecute(op.arg, tools=self._tools(sync=False), timeout=op.timeout)
        return await policy.aextract(op.arg)

    def _new_sandbox(self) -> Sandbox:
        return self.engine.sandbox_factory(
            max_output_chars=self.engine.max_output_chars, final_fields=self.final_fields
        )

    def _tools(self, sync: bool) -> dict[str, Any]:
        builtins = self.subcalls.sync_tools() if sync else self.subcalls.async_tools()
        return {**self.engine.tools, **builtins}

    def steps(self, query: str, context: Any) -> Generator[_Op, Any, RLMResult]:
        """The loop itself: yields operations, receives their results, returns the RLMResult."""
        engine, budget = self.engine, self.budget
        started = time.perf_counter()
        values = ([("context", context)] if context is not None else []) + list(self.inputs.items())
        history: list[Step] = []
        state = RunState(
            query=query,
            variables=[],
            tools=describe_tools(engine.tools),
            history=history,
            iteration=0,
            max_iterations=budget.limits.max_iterations,
            depth=self.depth,
            max_depth=budget.limits.max_depth,
            max_output_chars=engine.max_output_chars,
            final_fields=self.final_fields,
            inputs={k: v for k, v in self.inputs.items() if is_small(v)},
        )
        final: FinalAnswer | None = None
        answer: Any = None
        reason = "max_iterations"
        error: str | None = None
        infos = yield _Op("start", values)
        state.variables = [
            describe_variable(name, value, info) for (name, value), info in zip(values, infos, strict=True)
        ]
        sandbox = self.sandbox
        emit(
            self.observers,
            RunStarted(
                self.run_id,
                self.depth,
                query,
                state.variables,
                self.parent_id,
                getattr(sandbox, "kind", ""),
                getattr(sandbox, "isolation", ""),
            ),
        )
        for iteration in range(1, budget.limits.max_iterations + 1):
            limit = budget.exhausted() or self.subcalls.refused or self.subcalls.reserve_turn()
            if limit:
                reason = limit
                break
            state.iteration = iteration
            t0 = time.perf_counter()
            try:
                action: Action = yield _Op("act", state)
            except ModelError as exc:
                exc.partial = self._result(history, None, "error", started, str(exc))
                raise
            budget.record(action.model or _model_name(engine.policy), action.usage)
            step = Step(iteration, action.reasoning, action.response, notes=list(action.notes))
            history.append(step)
            emit(self.observers, RootStep(self.run_id, self.depth, iteration, action, time.perf_counter() - t0))
            final, answer, stop = yield from self._act_on(action, step, state)
            step.duration = time.perf_counter() - t0
            if stop:
                reason = stop
                break
        else:
            reason = budget.exhausted() or self.subcalls.refused or "max_iterations"
        refused = self.subcalls.reserve_turn() if final is None else None
        if refused:
            error = f"the extract step was not run: {refused}"
        elif final is None:
            state.iteration = len(history)
            try:
                completion = as_completion((yield _Op("extract", state)))
                budget.record(completion.model or _model_name(engine.policy), completion.usage)
                answer = completion.text
            except ModelError as exc:
                error = f"the extract step failed: {exc}"
        if final is not None:
            emit(self.observers, FinalReached(self.run_id, self.depth, len(history), answer, reason))
        result = self._result(history, final, reason, started, error, answer)
        emit(self.observers, RunFinished(self.run_id, self.depth, result))
        return result

    def _act_on(self, action: Action, step: Step, state: RunState) -> Generator[_Op, Any, tuple]:
        """Run an action's code blocks in order; stop at the first accepted final answer."""
        engine, budget = self.engine, self.budget
        if not action.code:
            if not action.has_final:
                if not action.notes:
                    step.notes.append(model_error("Your reply had no ```repl code block and no final answer."))
                return None, None, None
            if isinstance(action.final, FinalVar):
                code = f"FINAL_VAR({action.final.name!r})"
            else:
                return self._accept(FinalAnswer(action.final), step, state, None)
            action = Action(code=[code])
        for code in action.code:
            if not code or not code.strip():
                step.notes.append(model_error("A code block was empty; write the code you want to run."))
                continue
            halt = self.subcalls.may_exec()
            if halt:
                step.notes.append(model_error(f"The code was not run: the run is over ({halt})."))
                return None, None, halt
            left = budget.time_left()
            timeout = engine.exec_timeout if left is None else min(engine.exec_timeout, left)
            try:
                result: ExecResult = yield _Op("exec", code, timeout)
            except SandboxError as exc:
                step.notes.append(model_error(f"The sandbox failed and the REPL state is lost: {exc}"))
                return None, None, "sandbox_error"
            step.runs.append(CodeRun(code, result))
            emit(self.observers, CodeExecuted(self.run_id, self.depth, step.iteration, code, result))
            if result.final is not None:
                final, answer, stop = self._accept(result.final, step, state, code)
                if stop:
                    return final, answer, stop
        return None, None, None

    def _accept(
        self, final: FinalAnswer, step: Step, state: RunState, code: str | None
    ) -> tuple[FinalAnswer | None, Any, str | None]:
        refused = final_problem(state, step, code, refuse_premature=self.engine.refuse_premature_final)
        if refused:
            step.notes.append(model_error(refused))
            return None, None, None
        validator = self.engine.final_validator if self.depth == 0 else None
        if validator is None:
            return final, final.fields if final.fields and final.value is None else final.value, "final"
        value, problem = validator(final)
        if problem:
            step.notes.append(model_error(problem))
            return None, None, None
        return final, value, "final"

    def _result(
        self,
        history: list[Step],
        final: FinalAnswer | None,
        reason: str,
        started: float,
        error: str | None,
        answer: Any = None,
    ) -> RLMResult:
        return RLMResult(
            response=_as_text(answer),
            answer=answer,
            finish_reason=reason,
            steps=history,
            usage=self.budget.usage_snapshot(),
            execution_time=time.perf_counter() - started,
            fields=final.fields if final is not None else None,
            run_id=self.run_id,
            depth=self.depth,
            error=error,
        )


def _model_name(policy: Any) -> str:
    return str(getattr(policy, "model", None) or "root")


def _as_text(answer: Any) -> str:
    if answer is None:
        return ""
    return clean_text(answer) if isinstance(answer, str) else as_json_text(answer)
