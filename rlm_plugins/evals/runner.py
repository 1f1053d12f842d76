"""Run an evaluation: every example with every method, concurrently within a limit, one JSONL line per answer."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.evals.base import EvalExample, make_examples
from rlm_plugins.evals.methods import METHODS, Outcome, Settings, run_method
from rlm_plugins.evals.registry import get_task
from rlm_plugins.evals.scoring import as_text
from rlm_plugins.evals.summary import summarize

RESULTS = "results.jsonl"
SUMMARY = "summary.json"


@dataclass
class EvalConfig:
    """What to evaluate: the task spec (`TASK` or `TASK:VARIANT`), how many examples of which size, and how."""

    task: str
    settings: Settings
    size: int | None = None
    n: int = 10
    seed: int = 0
    methods: tuple[str, ...] = ("rlm", "direct")
    concurrency: int = 4
    out: str = "rlm_eval"


def row_of(example: EvalExample, method: str, outcome: Outcome, settings: Settings, score: float) -> dict[str, Any]:
    """The JSONL line for one answer."""
    return {
        "task": example.task,
        "example_id": example.id,
        "variant": example.meta.get("variant"),
        "tokens": example.tokens,
        "method": method,
        "model": settings.model,
        "sub_model": settings.sub_model or settings.model,
        "question": example.question,
        "gold": example.answer,
        "answer": _jsonable(outcome.answer),
        "score": score,
        "finish_reason": outcome.finish_reason,
        "usage": outcome.usage.as_dict(),
        "cost": outcome.usage.cost,
        "seconds": round(outcome.seconds, 4),
        "log_path": outcome.log_path,
        "error": outcome.error,
    }


async def run_eval(config: EvalConfig, on_done: Callable[[dict[str, Any]], None] | None = None) -> list[dict]:
    """Run the evaluation, write `results.jsonl` and `summary.json` under `config.out`, return the rows.

    Rows are appended to `results.jsonl` as answers arrive (an interrupted run keeps them), then rewritten in
    example order at the end.
    """
    unknown = [m for m in config.methods if m not in METHODS]
    if unknown:
        raise ConfigurationError(f"unknown methods {unknown}; use some of {list(METHODS)}")
    if config.concurrency < 1:
        raise ConfigurationError(f"concurrency={config.concurrency} must be at least 1")
    task, variant = get_task(config.task)
    examples = make_examples(task, config.n, config.seed, config.size, variant)
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = config.settings
    if settings.log_dir is None:
        settings.log_dir = os.fspath(out / "logs")
    gate = asyncio.Semaphore(config.concurrency)
    rows: list[dict[str, Any]] = []

    async def one(example: EvalExample, method: str) -> None:
        async with gate:
            outcome = await run_method(method, example, settings)
        score = task.score(outcome.answer, example) if outcome.answer is not None else 0.0
        row = row_of(example, method, outcome, settings, score)
        rows.append(row)
        with (out / RESULTS).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        if on_done is not None:
            on_done(row)

    (out / RESULTS).write_text("", encoding="utf-8")
    await asyncio.gather(*(one(example, method) for example in examples for method in config.methods))
    order = {(e.id, m): i for i, (e, m) in enumerate((e, m) for e in examples for m in config.methods)}
    rows.sort(key=lambda row: order[(row["example_id"], row["method"])])
    lines = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    (out / RESULTS).write_text(lines, encoding="utf-8")
    (out / SUMMARY).write_text(json.dumps(summarize(rows), indent=2), encoding="utf-8")
    return rows


def read_rows(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of an evaluation directory's `results.jsonl`."""
    path = pathlib.Path(directory) / RESULTS
    if not path.is_file():
        raise ConfigurationError(f"{path} does not exist; pass the --out directory of an `rlm-plugins eval` run")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return as_text(value)
    return value
