"""The functions the REPL calls on the host: llm_query, llm_query_batched, rlm_query, in sync and async form.

Both forms share everything but the fan-out: checking arguments, reserving the budget before a batch starts,
checking the spend again before each slot starts (so a batch stops once tokens, cost or time run out, overshooting
by at most the calls already in flight), recording usage, emitting events, and turning a failed slot into an error
string in that slot. `rlm_query` children draw on the same budget: each of their model calls is reserved first.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from rlm_plugins._threads import DaemonPool
from rlm_plugins.core.children import Children, Lifecycle
from rlm_plugins.core.events import SubCall, emit
from rlm_plugins.core.ports import Completion, SubModel, as_completion

if TYPE_CHECKING:
    from rlm_plugins.core.engine import Run

BUILTIN_TOOLS = ("llm_query", "llm_query_batched", "rlm_query")


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
        """None when `n` calls may start; else the error string every slot gets."""
        return self._refusal("cancelled" if self.life.cancelled else self.run.budget.reserve_calls(n))

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

    def _finish(self, kind: str, prompt: str, started: float, outcome: Completion | BaseException) -> str:
        run = self.run
        model = getattr(self.sub, "name", "sub")
        if isinstance(outcome, BaseException):
            error = f"{type(outcome).__name__}: {outcome}"
            run.budget.record(model, None)
            event = SubCall(run.run_id, run.depth, kind, model, len(prompt), 0, _since(started), None, error, prompt)
            emit(run.observers, event)
            return f"[Error] the sub-model call failed ({error}). Retry once, or continue without this piece."
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
        return self._finish("llm", prompt, time.perf_counter(), _call(lambda: self.sub.query(prompt)))

    async def _aslot(self, prompt: str) -> str:
        refused = self._slot_refused()
        if refused:
            return refused
        return self._finish("llm", prompt, time.perf_counter(), await _acall(lambda: self.sub.aquery(prompt)))

    def batch(self, prompts: Any) -> list[str]:
        items = self._prompts(prompts)
        refused = self._reserve(len(items)) if items else None
        if refused:
            return [refused] * len(items)
        if len(items) <= 1:
            return [self._slot(p) for p in items]
        pool = DaemonPool(min(self.max_concurrency, len(items)), "rlm-sub", idle=1.0)
        futures = [pool.submit(contextvars.copy_context().run, self._slot, p) for p in items]
        return [future.result() for future in futures]

    async def abatch(self, prompts: Any) -> list[str]:
        items = self._prompts(prompts)
        refused = self._reserve(len(items)) if items else None
        if refused:
            return [refused] * len(items)
        results = [""] * len(items)
        pending = iter(enumerate(items))

        async def worker() -> None:
            for index, prompt in pending:
                results[index] = await self._aslot(prompt)

        await asyncio.gather(*(worker() for _ in range(min(self.max_concurrency, len(items)))))
        return results

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


def _since(started: float) -> float:
    return time.perf_counter() - started
