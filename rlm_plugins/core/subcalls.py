"""The functions the REPL calls on the host: llm_query, llm_query_batched, rlm_query, in sync and async form.

Both forms share everything but the fan-out: checking arguments, reserving the budget before a batch starts,
checking the spend again before each slot starts (so a batch stops once tokens, cost or time run out, overshooting
by at most the calls already in flight), recording usage, emitting events, and turning a failed call into the text
the engine's `sub_failure` gives (an error string in that slot), or raising it in the model's code when that gives
None. `rlm_query` children draw on the same budget: each of their model calls is reserved first.

Running out of `max_llm_calls` ends the run after the current step (`on_llm_budget="end_run"`, the calls refused
get an error string), or raises `SubCallBudgetError` inside the model's code and lets the run go on
(`on_llm_budget="raise_in_code"`, as `dspy.RLM` does), so the model can still give its answer.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from rlm_plugins._threads import SHARED_LOOP, DaemonPool
from rlm_plugins.core.children import Children, Lifecycle
from rlm_plugins.core.events import SubCall, emit
from rlm_plugins.core.ports import Completion, SubModel, as_completion
from rlm_plugins.errors import SubCallBudgetError

if TYPE_CHECKING:
    from rlm_plugins.core.engine import Run

BUILTIN_TOOLS = ("llm_query", "llm_query_batched", "rlm_query")

SubFailure = Callable[[BaseException, bool], str | None]
"""What a failed sub-call gives the model's code: called with the error and whether the call was a slot of
`llm_query_batched`; returns the text that call returns, or None to raise the error inside the code."""

ON_LLM_BUDGET = ("end_run", "raise_in_code")
"""What running out of `max_llm_calls` does: end the run after this step, or raise inside the model's code."""


def failed_call_text(error: BaseException, batched: bool) -> str:
    """The default `SubFailure`: every failed call, single or in a batch, is an instruction to the model."""
    return (
        f"[Error] the sub-model call failed ({type(error).__name__}: {error}). Retry once, or continue without "
        "this piece."
    )


class SubCalls:
    """Sub-model access for one run; `sync_tools()` and `async_tools()` are what the sandbox serves."""

    def __init__(self, run: Run, sub_model: SubModel, max_concurrency: int) -> None:
        self.run = run
        self.sub = sub_model
        self.max_concurrency = max(1, max_concurrency)
        self.refused: str | None = None
        self.prepaid = 0
        """Calls the parent already reserved for this (child) run's first turn."""
        self.life = Lifecycle()
        self.children = Children()

    def reserve_turn(self) -> str | None:
        """Reserve this run's next own model call (a turn or the extract); the reason when it may not be made.

        The root run's turns are bounded by max_iterations; a child's turns are calls of the tree, so they count
        against max_llm_calls like any sub-call.
        """
        if not self.life.enter_loop():
            return "cancelled"
        if self.run.depth == 0:
            return None
        if self.prepaid:
            self.prepaid -= 1
            return None
        return self.run.budget.reserve_calls(1)

    def may_exec(self) -> str | None:
        """Why no code may start now ("cancelled", "max_time"), or None."""
        if self.life.cancelled:
            return "cancelled"
        if self.run.budget.time_left() == 0.0:
            return "max_time"
        return None

    def _prompts(self, prompts: Any) -> list[str]:
        if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
            raise TypeError("llm_query_batched(prompts) takes a list of strings; for one prompt use llm_query")
        return [p if isinstance(p, str) else str(p) for p in prompts]

    def _reserve(self, n: int) -> str | None:
        """None when `n` calls may start; else the error string every slot gets.

        Raises:
            SubCallBudgetError: `max_llm_calls` ran out and the engine raises that in the model's code.
        """
        budget = self.run.budget
        reason = "cancelled" if self.life.cancelled else budget.reserve_calls(n)
        if reason == "max_llm_calls" and self.run.engine.on_llm_budget == "raise_in_code":
            raise SubCallBudgetError(
                f"LLM call limit exceeded: {budget.llm_calls} + {n} > {budget.limits.max_llm_calls}. "
                "Use Python code for aggregation instead of making more LLM calls."
            )
        return self._refusal(reason)

    def _slot_refused(self) -> str | None:
        """Checked as each reserved slot starts: the refusal once time, tokens or cost ran out, else None."""
        refusal = self._refusal(self.run.budget.exhausted() or ("cancelled" if self.life.cancelled else None))
        if refusal is not None:
            self.run.budget.release_calls(1)
        return refusal

    def _refusal(self, reason: str | None) -> str | None:
        if reason is None:
            return None
        self.refused = self.refused or reason
        limits = self.run.budget.limits
        detail = f"max_llm_calls={limits.max_llm_calls}" if reason == "max_llm_calls" else reason
        return (
            f"[Error] sub-call budget exhausted ({detail}): no more llm_query calls are possible. Work with the "
            "results you already have and give your final answer."
        )

    def _finish(
        self, kind: str, prompt: str, started: float, outcome: Completion | BaseException, batched: bool = False
    ) -> str:
        run = self.run
        model = getattr(self.sub, "name", "sub")
        if isinstance(outcome, BaseException):
            error = f"{type(outcome).__name__}: {outcome}"
            run.budget.record(model, None)
            event = SubCall(run.run_id, run.depth, kind, model, len(prompt), 0, _since(started), None, error, prompt)
            emit(run.observers, event)
            text = run.engine.sub_failure(outcome, batched)
            if text is None:
                raise outcome
            return text
        completion = outcome
        run.budget.record(completion.model or model, completion.usage)
        emit(
            run.observers,
            SubCall(
                run.run_id,
                run.depth,
                kind,
                completion.model or model,
                len(prompt),
                len(completion.text),
                _since(started),
                completion.usage,
                prompt=prompt,
                response=completion.text,
            ),
        )
        return completion.text

    def query(self, prompt: Any) -> str:
        prompt = str(prompt)
        refused = self._reserve(1)
        if refused:
            return refused
        return self._finish("llm", prompt, time.perf_counter(), _call(lambda: self.sub.query(prompt)))

    async def aquery(self, prompt: Any) -> str:
        prompt = str(prompt)
        refused = self._reserve(1)
        if refused:
            return refused
        return self._finish("llm", prompt, time.perf_counter(), await _acall(lambda: self.sub.aquery(prompt)))

    def _slot(self, prompt: str) -> str:
        refused = self._slot_refused()
        if refused:
            return refused
        return self._finish("llm", prompt, time.perf_counter(), _call(lambda: self.sub.query(prompt)), True)

    async def _aslot(self, prompt: str) -> str:
        refused = self._slot_refused()
        if refused:
            return refused
        return self._finish("llm", prompt, time.perf_counter(), await _acall(lambda: self.sub.aquery(prompt)), True)

    def batch(self, prompts: Any) -> list[str]:
        items = self._prompts(prompts)
        refused = self._reserve(len(items)) if items else None
        if refused:
            return [refused] * len(items)
        if len(items) <= 1:
            return [self._slot(p) for p in items]
        if getattr(self.sub, "async_native", False) and not SHARED_LOOP.is_current():
            return SHARED_LOOP.run(self._aslots(items))  # one coroutine per slot on one loop: no thread per call
        pool = DaemonPool(min(self.max_concurrency, len(items)), "rlm-sub", idle=1.0)
        futures = [pool.submit(contextvars.copy_context().run, self._slot, p) for p in items]
        return _texts([_settled(future) for future in futures])

    async def abatch(self, prompts: Any) -> list[str]:
        items = self._prompts(prompts)
        refused = self._reserve(len(items)) if items else None
        if refused:
            return [refused] * len(items)
        return await self._aslots(items)

    async def _aslots(self, items: list[str]) -> list[str]:
        outcomes: list[Any] = [""] * len(items)
        pending = iter(enumerate(items))

        async def worker() -> None:  # max_concurrency workers, not one task per prompt behind a semaphore
            for index, prompt in pending:
                try:
                    outcomes[index] = await self._aslot(prompt)
                except Exception as exc:  # raised by _texts once every slot has ended
                    outcomes[index] = exc

        await asyncio.gather(*(worker() for _ in range(min(self.max_concurrency, len(items)))))
        return _texts(outcomes)

    def _child(self, prompt: Any, context: Any) -> tuple[Run | None, str | None]:
        """A child run with its first turn reserved, or the refusal string; (None, None) at the maximum depth."""
        child = self.run.child(*_child_args(prompt, context))
        if child is None:
            return None, None
        refused = self._reserve(1)
        if refused:
            return None, refused
        child.subcalls.prepaid = 1
        return child, None

    def rlm(self, prompt: Any, context: Any = None) -> str:
        child, refused = self._child(prompt, context)
        if child is None:
            return refused or self.query(prompt)
        if not self.children.add(child):
            return self._child_failed(child, "the parent run has ended")
        started = time.perf_counter()
        try:
            result = child.run_sync()
        except Exception as exc:
            return self._child_failed(child, f"{type(exc).__name__}: {exc}")
        finally:
            self.children.remove(child)
        return self._child_done(prompt, started, result)

    async def arlm(self, prompt: Any, context: Any = None) -> str:
        child, refused = self._child(prompt, context)
        if child is None:
            return refused or await self.aquery(prompt)
        if not self.children.add(child, asyncio.current_task()):
            return self._child_failed(child, "the parent run has ended")
        started = time.perf_counter()
        try:
            result = await child.run_async()
        except Exception as exc:
            return self._child_failed(child, f"{type(exc).__name__}: {exc}")
        finally:
            self.children.remove(child)
        return self._child_done(prompt, started, result)

    def _child_failed(self, child: Run, why: str) -> str:
        self.run.budget.release_calls(child.subcalls.prepaid)
        child.subcalls.prepaid = 0
        return f"[Error] the sub-RLM failed ({why}). Continue without it, or try a smaller task."

    def _child_done(self, prompt: Any, started: float, result: Any) -> str:
        run = self.run
        emit(
            run.observers,
            SubCall(
                run.run_id,
                run.depth,
                "rlm",
                "rlm",
                len(str(prompt)),
                len(result.response),
                _since(started),
                result.total_usage,
                prompt=str(prompt),
                response=result.response,
            ),
        )
        if result.error and not result.response:
            return f"[Error] the sub-RLM ended ({result.finish_reason}) without an answer: {result.error}"
        return result.response

    def stop_children(self) -> None:
        """Stop every rlm_query child still running (a run calls this as it ends)."""
        self.children.stop()

    async def astop_children(self) -> None:
        """The async twin of `stop_children`."""
        await self.children.astop()

    def sync_tools(self) -> dict[str, Callable[..., Any]]:
        return {"llm_query": self.query, "llm_query_batched": self.batch, "rlm_query": self.rlm}

    def async_tools(self) -> dict[str, Callable[..., Awaitable[Any]]]:
        return {"llm_query": self.aquery, "llm_query_batched": self.abatch, "rlm_query": self.arlm}


def _child_args(prompt: Any, context: Any) -> tuple[str, Any]:
    """rlm_query(prompt) gives the child the prompt as its context; with a context, the prompt is its query."""
    if context is None:
        return "", str(prompt)
    return str(prompt), context


def _call(fn: Callable[[], Any]) -> Completion | BaseException:
    try:
        return as_completion(fn())
    except Exception as exc:
        return exc


async def _acall(fn: Callable[[], Awaitable[Any]]) -> Completion | BaseException:
    try:
        return as_completion(await fn())
    except Exception as exc:
        return exc


def _settled(future: Any) -> str | BaseException:
    """A slot's text, or the error it raised (waiting for it either way)."""
    try:
        return future.result()
    except Exception as exc:
        return exc


def _texts(outcomes: list[Any]) -> list[str]:
    """The slots' texts once every slot has ended; the first error a slot raised is raised here."""
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return list(outcomes)


def _since(started: float) -> float:
    return time.perf_counter() - started
