"""Workloads and peer runners shared by the benchmarks: the same scripted root behaviour for every engine.

W2: a 100 MB str context, 3 iterations that each fan `llm_query_batched` over 100 chunks, then a final answer.
Each sub-call prompt carries a 2,000-character excerpt of its chunk (`full=True`: the whole 1 MB chunk).
"""

from __future__ import annotations

import os
import resource
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MB = 1_000_000


def make_context(size: int = 100 * MB) -> str:
    line = "the quick brown fox jumps over the lazy dog 0123456789\n"
    return (line * (size // len(line) + 1))[:size]


def fanout_code(iteration: int, full: bool) -> str:
    """One W2 iteration: split the context in 100 chunks and ask the sub-model about each."""
    excerpt = "c" if full else "c[:2000]"
    return (
        "n = len(context) // 100\n"
        "chunks = [context[i * n:(i + 1) * n] for i in range(100)]\n"
        f"answers = llm_query_batched([f'chunk {iteration} {{i}}: ' + {excerpt} for i, c in enumerate(chunks)])\n"
        "print(len(answers), answers[0][:20])"
    )


def fence(code: str) -> str:
    return f"```repl\n{code}\n```"


def root_replies(full: bool, final: str = "FINAL('done')") -> list[str]:
    return [fence(fanout_code(i, full)) for i in range(1, 4)] + [fence(final)]


def scripted_root(replies: list[str]) -> Callable[[list[Any]], str]:
    """A root model that answers turn by turn; it reads OpenAI dicts and LangChain messages alike."""

    def complete(messages: list[Any]) -> str:
        turn = sum(1 for m in messages if (m["role"] if isinstance(m, dict) else m.type) in ("assistant", "ai"))
        return replies[min(turn, len(replies) - 1)]

    return complete


def w2_engine(full: bool = False, sandbox: str = "local") -> Any:
    """Our engine on W2: the scripted root, an instant sub-model, the given sandbox."""
    from rlm_plugins.core.budget import Limits
    from rlm_plugins.core.callables import CallableSubModel
    from rlm_plugins.core.chat_policy import ChatPolicy
    from rlm_plugins.core.engine import Engine
    from rlm_plugins.repl.factory import sandbox_factory

    options = {"memory_limit": 4 * 1024**3} if full and sandbox == "local" else {}
    return Engine(
        ChatPolicy(scripted_root(root_replies(full)), model="scripted"),
        CallableSubModel(lambda p: "ok", name="instant"),
        sandbox_factory(sandbox, **options),
        limits=Limits(max_iterations=10, max_llm_calls=1000),
    )


def w3_engine(code: str, mode: str, calls: int = 1000, latency: float = 0.1, concurrency: int = 32) -> Any:
    """Our engine on W3: `code` as the root's reply, a sub-model that sleeps `latency` ("sync" or "async")."""
    import asyncio

    from rlm_plugins.core.budget import Limits
    from rlm_plugins.core.callables import CallableSubModel
    from rlm_plugins.core.chat_policy import ChatPolicy
    from rlm_plugins.core.engine import Engine
    from rlm_plugins.repl.factory import sandbox_factory

    async def slow(prompt: str) -> str:
        await asyncio.sleep(latency)
        return "ok"

    def slow_sync(prompt: str) -> str:
        time.sleep(latency)
        return "ok"

    return Engine(
        ChatPolicy(scripted_root([fence(code)])),
        CallableSubModel(slow_sync if mode == "sync" else slow, name="slow"),
        sandbox_factory("local"),
        limits=Limits(max_llm_calls=calls),
        max_concurrency=concurrency,
    )


def official_rlm(replies: list[str], **options: Any) -> Any:
    """The official `rlms` RLM (local environment) with a scripted root client patched in for `get_client`."""
    import rlm.core.rlm as official
    from rlm.clients.base_lm import BaseLM
    from rlm.core.types import ModelUsageSummary, UsageSummary

    class Scripted(BaseLM):
        def __init__(self, **kw: Any) -> None:
            super().__init__(model_name=kw.get("model_name", "scripted"))
            self.calls = 0

        def completion(self, prompt: Any) -> str:
            self.calls += 1
            if isinstance(prompt, list):
                turn = sum(1 for m in prompt if m.get("role") == "assistant")
                return replies[min(turn, len(replies) - 1)]
            return "ok"

        async def acompletion(self, prompt: Any) -> str:
            return self.completion(prompt)

        def get_usage_summary(self) -> Any:
            return UsageSummary({self.model_name: ModelUsageSummary(self.calls, 0, 0)})

        def get_last_usage(self) -> Any:
            return ModelUsageSummary(1, 0, 0)

    official.get_client = lambda backend, kwargs: Scripted(**kwargs)
    return official.RLM(
        backend="openai", backend_kwargs={"model_name": "scripted"}, environment="local", max_iterations=10, **options
    )


def w2_setup(description: str = "", http: bool = False) -> Any:
    """Parse --runs / --quick (and --http when `http`) and build the context: (runs, context[, http])."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10 MB context, 2 runs (a smoke run)")
    if http:
        parser.add_argument("--http", action="store_true", help="models behind a loopback OpenAI-compatible server")
    args = parser.parse_args()
    runs, context = (2 if args.quick else args.runs), make_context(10 * MB if args.quick else 100 * MB)
    return (runs, context, args.http) if http else (runs, context)


def median_time(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Median wall time of `runs` calls (after one warm-up call), and the last result."""
    result = fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


class PeakMemory:
    """Peak RSS of this process plus the peak of its children (sandboxes) while the block runs, in MB."""

    def __enter__(self) -> PeakMemory:
        self.baseline = _tree_rss(os.getpid())
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.samples.append(_tree_rss(os.getpid()))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return max(self.samples or [0]) / MB

    def footprint(self, context_bytes: int) -> float:
        """What the run added at its peak, plus the context it was given: comparable to the context's size."""
        return (max(self.samples or [self.baseline]) - self.baseline + context_bytes) / MB


def _tree_rss(pid: int) -> int:
    """RSS of `pid` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = resource.getpagesize()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * page
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0)
        stack.extend(children.get(current, []))
    return total


def status_kib(field: str) -> int:
    """A kB field of /proc/self/status (VmRSS, VmHWM, ...)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
