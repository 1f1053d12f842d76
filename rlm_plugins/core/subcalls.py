"""The functions the REPL calls on the host: llm_query, llm_query_batched, rlm_query, in sync and async form.

Both forms share everything but the fan-out: checking arguments, reserving the budget before a batch starts,
recording usage, emitting events, and turning a failed slot into an error string in that slot.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

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

    def _prompts(self, prompts: Any) -> list[str]:
        if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)):
            raise TypeError("llm_query_batched(prompts) takes a list of strings; for one prompt use llm_query")
        return [p if isinstance(p, str) else str(p) for p in prompts]

    def _reserve(self, n: int) -> str | None:
        """None when `n` calls may start; else the error string every slot gets."""
        if self.run.cancelled:
            return "[Error] the run was cancelled; no more sub-calls start."
        reason = self.run.budget.reserve_calls(n)
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

    def batch(self, prompts: Any) -> list[str]:
        items = self._prompts(prompts)
        refused = self._reserve(len(items)) if items else None
        if refused:
            return [refused] * len(items)
        if len(items) <= 1:
            return [self._finish("llm", p, time.perf_counter(), _call(lambda p=p: self.sub.query(p))) for p in items]

        def one(prompt: str) -> str:
            return self._finish("llm", prompt, time.perf_counter(), _call(lambda: self.sub.query(prompt)))

        with cf.ThreadPoolExecutor(min(self.max_concurrency, len(items)), thread_name_prefix="rlm-sub") as pool:
            return list(pool.map(one, items))

    async def abatch(self, prompts: Any) -> list[str]:
        items = self._prompts(prompts)
        refused = self._reserve(len(items)) if items else None
        if refused:
            return [refused] * len(items)
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(prompt: str) -> str:
            async with gate:
                started = time.perf_counter()
                return self._finish("llm", prompt, started, await _acall(lambda: self.sub.aquery(prompt)))

        return list(await asyncio.gather(*(one(p) for p in items)))

    def rlm(self, prompt: Any, context: Any = None) -> str:
        child = self.run.child(*_child_args(prompt, context))
        if child is None:
            return self.query(prompt)
        started = time.perf_counter()
        result = child.run_sync()
        return self._child_done(prompt, started, result)

    async def arlm(self, prompt: Any, context: Any = None) -> str:
        child = self.run.child(*_child_args(prompt, context))
        if child is None:
            return await self.aquery(prompt)
        started = time.perf_counter()
        result = await child.run_async()
        return self._child_done(prompt, started, result)

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
        return result.response

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
