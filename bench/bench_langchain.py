"""ChatRLM's overhead over the standalone engine on W2: `python bench/bench_langchain.py [--runs 5] [--quick]`.

W2: a 100 MB context in one HumanMessage, 3 iterations that each fan `llm_query_batched` over 100 chunks
(2,000-character excerpts), then `FINAL('done')`. Both sides run the same scripted root replies, an instant
sub-model answering "ok", and the `local` sandbox:

- engine: `rlm_plugins.core.engine.Engine` + `ChatPolicy` over a plain function + `CallableSubModel`;
- ChatRLM: `ChatRLM.invoke` with a scripted `BaseChatModel` as root and as sub, so every root turn and every one
  of the 300 sub-calls goes through LangChain's `invoke` with its callback machinery (no handler attached), and
  the run's steps are published as custom events;
- ChatRLM traced: the same with a no-op tracer attached, so each inner call is also a traced child run.

Each variant runs once to warm up, then `--runs` times, interleaved; the table shows medians and the overhead
against the engine. The target is ChatRLM (no handler) <= 15% over the engine.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _workloads import MB, root_replies, scripted_root, w2_engine, w2_setup
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tracers.base import BaseTracer

from rlm_plugins.langchain import ChatRLM

REPLIES = root_replies(full=False)


scripted = scripted_root(REPLIES)


class ScriptedChat(BaseChatModel):
    """The same scripted replies as a LangChain chat model (root), or an instant "ok" (sub)."""

    instant: bool = False

    @property
    def _llm_type(self) -> str:
        return "bench-instant" if self.instant else "bench-scripted"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        text = "ok" if self.instant else scripted(messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])


class NullTracer(BaseTracer):
    """A tracer that keeps nothing: it measures the cost of traced child runs without any I/O."""

    def _persist_run(self, run: Any) -> None:
        pass


def run_engine(context: str) -> str:
    return w2_engine().run("bench", context).response


def chat_rlm() -> ChatRLM:
    return ChatRLM(
        root=ScriptedChat(),
        sub=ScriptedChat(instant=True),
        sandbox="local",
        max_iterations=10,
        max_llm_calls=1000,
    )


def run_chat_rlm(context: str) -> str:
    return chat_rlm().invoke([HumanMessage(context)]).text


def run_chat_rlm_traced(context: str) -> str:
    return chat_rlm().invoke([HumanMessage(context)], {"callbacks": [NullTracer()]}).text


def main() -> None:
    runs, context = w2_setup(__doc__.splitlines()[0])
    size = len(context)
    from rlm_plugins.repl.isolation import best_level

    print(f"W2: context {size / MB:.0f} MB, {runs} runs each (interleaved), local sandbox isolation: {best_level()}\n")
    variants = [("engine (Engine + ChatPolicy)", run_engine), ("ChatRLM.invoke", run_chat_rlm)]
    variants.append(("ChatRLM.invoke, traced (no-op tracer)", run_chat_rlm_traced))
    times: dict[str, list[float]] = {name: [] for name, _ in variants}
    for name, fn in variants:
        assert fn(context) == "done", name
    for _ in range(runs):
        for name, fn in variants:
            started = time.perf_counter()
            answer = fn(context)
            times[name].append(time.perf_counter() - started)
            assert answer == "done", (name, answer)
    base = statistics.median(times[variants[0][0]])
    print("| variant | median s | min s | max s | overhead vs engine |\n| --- | --- | --- | --- | --- |")
    for name, _ in variants:
        median = statistics.median(times[name])
        overhead = "-" if median == base else f"{(median / base - 1) * 100:+.1f}%"
        print(f"| {name} | {median:.3f} | {min(times[name]):.3f} | {max(times[name]):.3f} | {overhead} |")


if __name__ == "__main__":
    main()
