"""The MCP gateway: an IDE agent works on a code base only through bounded tools, and asks RLMs about it.

Tools: `open`, `list`, `read`, `search` (each bounded in what it returns) and `rlm_query`, which runs an RLM with
the chosen files as the REPL's `context` (they never enter a prompt) and reports progress as MCP progress
notifications. Every call is appended to a provenance log, readable as the resource `rlm://provenance`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_plugins.core.events import Event, RootStep, RunFinished, SubCall
from rlm_plugins.errors import WorkspaceError
from rlm_plugins.mcp import _search
from rlm_plugins.mcp.provenance import ProvenanceLog
from rlm_plugins.mcp.workspace import MAX_READ_LINES, Workspace

MAX_RESULT_CHARS = 64 * 1024
MAX_SEARCH_HITS = 200
MAX_PATTERN_CHARS = 500
SEARCH_BYTES = 256 * 1024 * 1024
MAX_CONTEXT_BYTES = 512 * 1024 * 1024
BUDGET_KEYS = ("max_iterations", "max_llm_calls", "max_time", "max_cost")


@dataclass
class GatewayConfig:
    """What the gateway runs `rlm_query` with, and the limits every client gets.

    Args:
        roots: workspace directories.
        rlm_factory: builds the RLM for one `rlm_query` from its capped budget (keys of BUDGET_KEYS);
            default: `rlm_plugins.RLM(model=..., sub_model=..., sandbox=..., api_base=..., api_key=...)`.
        budget: the largest budget a client may ask for; also the default.
        calls_per_minute: per client, over all tools.
        search_timeout: seconds a search may take before it is stopped.
        log_dir: where the provenance log and the RLM trajectory logs go.
    """

    roots: list[str]
    model: str | None = None
    sub_model: str | None = None
    sandbox: str = "local"
    api_base: str | None = None
    api_key: str | None = None
    rlm_factory: Callable[[dict[str, Any]], Any] | None = None
    budget: dict[str, Any] = field(
        default_factory=lambda: {"max_iterations": 20, "max_llm_calls": 200, "max_time": 600.0, "max_cost": None}
    )
    calls_per_minute: int = 120
    search_timeout: float = 10.0
    log_dir: str = "rlm_logs/mcp"


class RateLimiter:
    """At most `per_minute` calls per client in any sliding minute."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._calls: dict[str, deque[float]] = defaultdict(deque)

    def check(self, client: str) -> None:
        now = time.monotonic()
        window = self._calls[client]
        while window and now - window[0] > 60:
            window.popleft()
        if len(window) >= self.per_minute:
            wait = 60 - (now - window[0])
            raise WorkspaceError(f"rate limit: {self.per_minute} calls per minute; retry in {wait:.0f} s")
        window.append(now)


class Gateway:
    """The tools, independent of the MCP transport; `build_server` exposes them over MCP."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.workspace = Workspace(list(config.roots))
        self.log_dir = Path(config.log_dir)
        self.provenance = ProvenanceLog(self.log_dir / "provenance.jsonl")
        self.limiter = RateLimiter(config.calls_per_minute)

    def _finish(self, client: str, tool: str, arguments: dict[str, Any], handles: list[str], result: Any) -> str:
        text = json.dumps(result, ensure_ascii=False)
        if len(text) > MAX_RESULT_CHARS:
            text = json.dumps({"error": f"result over {MAX_RESULT_CHARS} characters; ask for less"})
        self.provenance.record(client, tool, arguments, handles, text)
        return text

    def call(self, client: str, tool: str, arguments: dict[str, Any]) -> str:
        """Run one bounded tool (not rlm_query) for `client`; returns JSON text, refusals included."""
        handles: list[str] = []
        try:
            self.limiter.check(client)
            result = getattr(self, f"_tool_{tool}")(handles, **arguments)
        except (WorkspaceError, TypeError, ValueError) as exc:
            result = {"error": str(exc)}
        return self._finish(client, tool, arguments, handles, result)

    def _tool_open(self, handles: list[str], path_or_glob: str) -> dict[str, Any]:
        opened = self.workspace.open(path_or_glob)
        handles.extend(handle for handle, _ in opened)
        return {"files": [{"handle": h, "name": ref.name, "size": ref.size} for h, ref in opened]}

    def _tool_list(self, handles: list[str], handle_or_dir: str = ".") -> dict[str, Any]:
        if handle_or_dir.startswith("h_"):
            handles.append(handle_or_dir)
        return {"entries": self.workspace.list(handle_or_dir)}

    def _tool_read(
        self, handles: list[str], handle: str, start_line: int = 1, n_lines: int = MAX_READ_LINES
    ) -> dict[str, Any]:
        handles.append(handle)
        return self.workspace.read(handle, start_line, n_lines)

    def _tool_search(self, handles: list[str], handle_or_dir: str, pattern: str, max_hits: int = 50) -> dict[str, Any]:
        if len(pattern) > MAX_PATTERN_CHARS:
            raise WorkspaceError(f"the pattern is over {MAX_PATTERN_CHARS} characters")
        try:
            __import__("re").compile(pattern)
        except Exception as exc:
            raise WorkspaceError(f"invalid regular expression: {exc}") from None
        if handle_or_dir.startswith("h_"):
            handles.append(handle_or_dir)
        refs, _ = self.workspace.target(handle_or_dir)
        request = {
            "pattern": pattern,
            "files": [[ref.name, str(ref.path)] for ref in refs],
            "max_hits": max(1, min(int(max_hits), MAX_SEARCH_HITS)),
            "max_bytes": SEARCH_BYTES,
        }
        try:
            done = subprocess.run(
                [sys.executable, "-I", _search.__file__],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                timeout=self.config.search_timeout,
            )
        except subprocess.TimeoutExpired:
            raise WorkspaceError(
                f"the search took over {self.config.search_timeout:.0f} s and was stopped; use a simpler pattern"
            ) from None
        if done.returncode != 0:
            raise WorkspaceError("the search failed; check the pattern")
        return json.loads(done.stdout)

    def budget(self, asked: dict[str, Any] | None) -> dict[str, Any]:
        """The client's budget, each limit capped by the server's."""
        caps = self.config.budget
        budget = dict(caps)
        for key, value in (asked or {}).items():
            if key not in BUDGET_KEYS:
                raise WorkspaceError(f"unknown budget key {key!r}; use {list(BUDGET_KEYS)}")
            if value is None:
                continue
            if not isinstance(value, (int, float)) or value <= 0:
                raise WorkspaceError(f"budget {key} must be a positive number")
            cap = caps.get(key)
            budget[key] = value if cap is None else min(value, cap)
        return budget

    def context_for(self, handles: list[str]) -> Any:
        """One file as a Path (the host never reads it), several as {name: text} (bounded in total)."""
        if not handles:
            raise WorkspaceError("give at least one handle from open()")
        refs = [self.workspace.handle(h) for h in handles]
        if len(refs) == 1:
            return refs[0].path
        if sum(ref.size for ref in refs) > MAX_CONTEXT_BYTES:
            raise WorkspaceError(f"the files add up to over {MAX_CONTEXT_BYTES >> 20} MiB; choose fewer")
        return {ref.name: ref.path.read_text("utf-8", "replace") for ref in refs}

    def make_rlm(self, budget: dict[str, Any]) -> Any:
        if self.config.rlm_factory is not None:
            return self.config.rlm_factory(budget)
        from rlm_plugins.standalone.rlm import RLM

        if not self.config.model:
            raise WorkspaceError("this gateway has no model configured; start it with --model")
        return RLM(
            model=self.config.model,
            sub_model=self.config.sub_model,
            sandbox=self.config.sandbox,
            api_base=self.config.api_base,
            api_key=self.config.api_key,
            max_iterations=int(budget["max_iterations"]),
            max_llm_calls=budget.get("max_llm_calls"),
            max_time=budget.get("max_time"),
            max_cost=budget.get("max_cost"),
        )

    async def rlm_query(
        self,
        client: str,
        question: str,
        handles: list[str],
        budget: dict[str, Any] | None,
        progress: Callable[[float, str], None] | None = None,
    ) -> str:
        """Run an RLM over the files behind `handles`; returns JSON with answer, finish reason, usage, log id."""
        from rlm_plugins.core.logger import RLMLogger

        arguments = {"question": question, "handles": list(handles), "budget": budget}
        try:
            self.limiter.check(client)
            capped = self.budget(budget)
            context = self.context_for(list(handles))
            rlm = self.make_rlm(capped)
        except WorkspaceError as exc:
            return self._finish(client, "rlm_query", arguments, list(handles), {"error": str(exc)})
        logger = RLMLogger(self.log_dir, file_name="rlm_query")
        logger.set_metadata(root_model=getattr(rlm, "model", ""), max_iterations=capped["max_iterations"])
        observers: list[Callable[[Event], None]] = [logger]
        if progress is not None:
            observers.append(_ProgressObserver(progress, int(capped["max_iterations"])))
        result = await rlm.engine.arun(question, context, observers=observers)
        answer = {
            "answer": result.response,
            "finish_reason": result.finish_reason,
            "usage": {model: usage.as_dict() for model, usage in result.usage.items()},
            "log_id": os.path.basename(logger.log_file_path or ""),
            "error": result.error,
        }
        return self._finish(client, "rlm_query", arguments, list(handles), answer)


class _ProgressObserver:
    """Turns engine events into (progress, message) callbacks: one unit per root step."""

    def __init__(self, report: Callable[[float, str], None], total: int) -> None:
        self.report = report
        self.total = total
        self.sub_calls = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, SubCall):
            self.sub_calls += 1
        elif isinstance(event, RootStep) and event.depth == 0:
            self.report(float(event.iteration), f"step {event.iteration}, {self.sub_calls} sub-calls so far")
        elif isinstance(event, RunFinished) and event.depth == 0:
            self.report(float(self.total), f"done: {event.result.finish_reason}")


def client_id(headers: Any) -> str:
    """A stable, non-secret name for the caller: a hash of its (already verified) bearer token, else 'stdio'."""
    auth = (headers or {}).get("authorization", "") if headers is not None else ""
    if auth:
        return "token:" + hashlib.sha256(auth.encode()).hexdigest()[:12]
    return "stdio"


def _bridge(loop: asyncio.AbstractEventLoop, send: Callable[..., Any]) -> Callable[[float, str], None]:
    """A thread-safe progress callback that schedules `send(progress, total, message)` on `loop`."""

    def report(progress: float, message: str) -> None:
        asyncio.run_coroutine_threadsafe(send(progress, message), loop)

    return report
