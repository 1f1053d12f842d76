"""`RLMLogger`: writes runs as JSONL in the official `rlms` log format, so its trajectory visualizer opens them.

The file starts with one `metadata` line, then one `iteration` line per root step: the prompt sent, the response,
the code blocks with their results (stdout, stderr, locals, execution_time, rlm_calls), the final answer and the
iteration time. It is an observer of the engine's events; only the root run (depth 0) of each tree is logged,
and sub-calls (llm_query slots, rlm_query children) appear as that iteration's `rlm_calls`. As in the official
package, an rlm_query child's own trajectory is the call's `metadata` ({"run_metadata", "iterations"}).

Beyond the official fields (which readers of that format ignore): each iteration has `usage` (the root call's
tokens and cost), each call has `kind` ("llm" or "rlm") and `error`, and the run's last iteration has `run_end`:
finish_reason, answer, extracted, error, notes, usage and execution_time of the whole run.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from datetime import datetime
from typing import Any

from rlm_plugins.core.events import CodeExecuted, Event, RootStep, RunFinished, RunStarted, SubCall
from rlm_plugins.repl._values import as_json_text, clean_text, plain, safe_str


class RLMLogger:
    """Logs runs to `log_dir` (one JSONL file per logger) and keeps the last run's trajectory in memory.

    Examples:
        >>> logger = RLMLogger("rlm_logs")  # doctest: +SKIP
        >>> RLM(model="openai/gpt-5-mini", logger=logger).completion("...")  # doctest: +SKIP
    """

    def __init__(self, log_dir: str | os.PathLike[str] | None = None, file_name: str = "rlm") -> None:
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.log_file_path: str | None = None
        if self.log_dir is not None:
            os.makedirs(self.log_dir, exist_ok=True)
            stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
            self.log_file_path = os.path.join(self.log_dir, f"{file_name}_{stamp}_{uuid.uuid4().hex[:8]}.jsonl")
        self.metadata: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._runs: dict[str, dict[str, Any]] = {}
        self._trajectory: dict[str, Any] | None = None

    def set_metadata(self, **metadata: Any) -> None:
        """Run metadata for the `metadata` line (root_model, max_depth, max_iterations, backend, environment...)."""
        self.metadata.update(metadata)

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, SubCall):
                run = self._runs.get(event.run_id)
                if run is not None:
                    call = _sub_call(event)
                    if event.kind == "rlm":
                        call["metadata"] = _child_trajectory(run["children"], event.response)
                    run["pending_calls"].append(call)
                return
            if isinstance(event, RunStarted):
                self._start(event)
            elif isinstance(event, RootStep):
                self._root_step(event)
            elif isinstance(event, CodeExecuted):
                self._code(event)
            elif isinstance(event, RunFinished):
                self._finish(event)

    def _start(self, event: RunStarted) -> None:
        self._runs[event.run_id] = {
            "iterations": [],
            "current": None,
            "pending_calls": [],
            "children": [],
            "parent_id": event.parent_id,
            "logged": event.depth == 0,
        }
        entry = {
            "type": "metadata",
            "timestamp": datetime.now().isoformat(),
            "root_model": self.metadata.get("root_model", ""),
            "max_depth": self.metadata.get("max_depth", 1),
            "max_iterations": self.metadata.get("max_iterations", 0),
            "backend": self.metadata.get("backend", "litellm"),
            "backend_kwargs": _jsonable(self.metadata.get("backend_kwargs", {})),
            "environment_type": event.sandbox or self.metadata.get("environment_type", ""),
            "environment_kwargs": _jsonable(
                {"isolation": event.isolation, **self.metadata.get("environment_kwargs", {})}
            ),
            "other_backends": self.metadata.get("other_backends"),
        }
        self._runs[event.run_id]["metadata"] = entry
        if event.depth == 0:
            self._write(entry)

    def _root_step(self, event: RootStep) -> None:
        run = self._runs.get(event.run_id)
        if run is None:
            return
        self._flush(run)
        run["current"] = {
            "prompt": _jsonable(event.action.prompt),
            "response": event.action.response,
            "code_blocks": [],
            "final_answer": None,
            "iteration_time": event.duration,
            "usage": event.action.usage.as_dict() if event.action.usage else None,
        }

    def _code(self, event: CodeExecuted) -> None:
        run = self._runs.get(event.run_id)
        if run is None or run["current"] is None:
            return
        result = event.result
        calls, run["pending_calls"] = run["pending_calls"], []
        final = result.final
        run["current"]["code_blocks"].append(
            {
                "code": event.code,
                "result": {
                    "stdout": result.stdout,
                    "stderr": result.stderr + (f"\n{result.error}" if result.error else ""),
                    "locals": {},
                    "execution_time": result.duration,
                    "rlm_calls": calls,
                    "final_answer": None if final is None else _answer_text(final.value, final.fields),
                },
            }
        )

    def _finish(self, event: RunFinished) -> None:
        run = self._runs.pop(event.run_id, None)
        if run is None:
            return
        result = event.result
        if run["current"] is not None:
            run["current"]["final_answer"] = result.response if result.finish_reason == "final" else None
            run["current"]["run_end"] = _run_end(result)
        self._flush(run)
        trajectory = {"run_metadata": run.get("metadata"), "iterations": run["iterations"]}
        parent = self._runs.get(run["parent_id"] or "")
        if parent is not None:
            parent["children"].append((result.response, trajectory))
        elif run["logged"]:
            self._trajectory = trajectory

    def _flush(self, run: dict[str, Any]) -> None:
        current, run["current"] = run["current"], None
        if current is None:
            return
        entry = {
            "type": "iteration",
            "iteration": len(run["iterations"]) + 1,
            "timestamp": datetime.now().isoformat(),
            **current,
        }
        run["iterations"].append(entry)
        if run["logged"]:
            self._write(entry)

    def _write(self, entry: dict[str, Any]) -> None:
        if self.log_file_path is None:
            return
        try:
            line = json.dumps(entry, ensure_ascii=False, default=safe_str)
        except (ValueError, RecursionError):  # an int too long for str(), a cycle, very deep data
            line = json.dumps(plain(entry), ensure_ascii=False)
        with open(self.log_file_path, "a", encoding="utf-8") as fh:
            fh.write(clean_text(line) + "\n")

    def get_trajectory(self) -> dict[str, Any] | None:
        """The last finished root run: its metadata and iterations, as written to the log."""
        return self._trajectory


def _sub_call(event: SubCall) -> dict[str, Any]:
    usage = event.usage
    summary = {
        event.model: {
            "total_calls": usage.calls if usage else 1,
            "total_input_tokens": usage.input_tokens if usage else 0,
            "total_output_tokens": usage.output_tokens if usage else 0,
            "total_cost": usage.cost if usage else None,
        }
    }
    return {
        "root_model": event.model,
        "prompt": event.prompt,
        "response": event.response if event.error is None else f"[Error] {event.error}",
        "usage_summary": {"model_usage_summaries": summary},
        "execution_time": event.duration,
        "kind": event.kind,
        "error": event.error,
    }


def _child_trajectory(children: list[tuple[str, dict[str, Any]]], response: str) -> dict[str, Any] | None:
    """The finished child run whose answer this rlm_query call returned (the oldest one if none matches)."""
    for index, (answer, _) in enumerate(children):
        if answer == response:
            return children.pop(index)[1]
    return children.pop(0)[1] if children else None


def _run_end(result: Any) -> dict[str, Any]:
    """How the run ended, on its last iteration (an extension: official readers ignore it)."""
    return {
        "finish_reason": result.finish_reason,
        "answer": result.response if result.finish_reason == "final" else None,
        "extracted": getattr(result, "extracted", None),
        "error": result.error,
        "notes": list(result.steps[-1].notes) if result.steps else [],
        "usage": result.total_usage.as_dict(),
        "execution_time": result.execution_time,
    }


def _answer_text(value: Any, fields: Any) -> str:
    chosen = fields if fields and value is None else value
    return clean_text(chosen) if isinstance(chosen, str) else as_json_text(chosen)


def _jsonable(value: Any) -> Any:
    return plain(value)
