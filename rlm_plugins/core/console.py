"""Live progress of runs on stderr: iteration, sub-calls, tokens, elapsed time. An observer of the events."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from rlm_plugins.core.events import CodeExecuted, Event, FinalReached, RootStep, RunFinished, RunStarted, SubCall


class ConsoleProgress:
    """Prints one line per event of interest; uses rich when installed, plain text otherwise."""

    def __init__(self, stream: TextIO | None = None, show_code: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.show_code = show_code
        self.started = time.monotonic()
        self.sub_calls = 0
        self.tokens = 0
        self._lock = threading.Lock()
        try:
            from rich.console import Console

            self._console: Any = Console(file=self.stream, highlight=False, soft_wrap=True)
        except ImportError:
            self._console = None

    def _say(self, text: str, style: str = "") -> None:
        elapsed = time.monotonic() - self.started
        line = f"[{elapsed:6.1f}s] {text}"
        if self._console is not None:
            self._console.print(line, style=style or None, markup=False)
        else:
            print(line, file=self.stream, flush=True)

    def __call__(self, event: Event) -> None:
        indent = "  " * event.depth
        with self._lock:
            if isinstance(event, RunStarted):
                sizes = ", ".join(f"{v.name}: {v.type} of {v.length:,}" for v in event.variables)
                self._say(f"{indent}run started ({event.sandbox}, isolation={event.isolation}) {sizes}", "bold")
            elif isinstance(event, RootStep):
                usage = event.action.usage
                self.tokens += usage.total_tokens if usage else 0
                blocks = len(event.action.code)
                self._say(
                    f"{indent}iteration {event.iteration}: {blocks} code block(s), {self.sub_calls} sub-calls, "
                    f"{self.tokens:,} tokens",
                    "cyan",
                )
            elif isinstance(event, CodeExecuted):
                if self.show_code:
                    self._say(
                        f"{indent}  ran: {event.code.strip().splitlines()[0][:100] if event.code.strip() else ''}"
                    )
                if event.result.error is not None:
                    self._say(f"{indent}  error: {event.result.error.type}: {event.result.error.message[:200]}", "red")
            elif isinstance(event, SubCall):
                self.sub_calls += 1
                self.tokens += event.usage.total_tokens if event.usage else 0
            elif isinstance(event, FinalReached):
                self._say(f"{indent}final answer after {event.iteration} iteration(s)", "green")
            elif isinstance(event, RunFinished) and event.depth == 0:
                result = event.result
                self._say(
                    f"done: {result.finish_reason}, {result.iterations} iterations, {self.sub_calls} sub-calls, "
                    f"{self.tokens:,} tokens, {result.execution_time:.2f}s",
                    "bold green" if result.finish_reason == "final" else "yellow",
                )
