"""Reading a JSONL trajectory log (ours or the official `rlms` one) into the compact data the page renders.

Long texts are clipped here, so the page stays small whatever the run: a clipped text is `{"text", "total"}`
(the first characters and the full length), and only a sample of each code block's sub-calls is kept, next to
counts, durations, tokens and costs computed over all of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rlm_plugins.viewer._stats import call_stats, sum_usage, usage_of


@dataclass
class Limits:
    """How much of each text the page keeps; the rest stays in the log."""

    text: int = 4000
    call_text: int = 600
    sample_calls: int = 12
    children: int = 20


def clip(value: Any, limit: int) -> Any:
    """`value` as text, cut to `limit` characters: a str when it fits, else {"text", "total"}."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else {"text": text[:limit], "total": len(text)}


def read_entries(lines: Iterable[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The JSON objects of a JSONL text, and one problem line per line that is not one."""
    entries, problems = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            problems.append(f"line {number} is not JSON ({exc.msg}); skipped")
            continue
        if isinstance(entry, dict):
            entries.append(entry)
        else:
            problems.append(f"line {number} is not a JSON object; skipped")
    return entries, problems


def load_log(path: str | os.PathLike[str], limits: Limits | None = None) -> dict[str, Any]:
    """The page data for the log at `path`: its runs (a log holds one per metadata line) and any problems."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        entries, problems = read_entries(fh)
    data = build(entries, limits or Limits())
    data["source"] = os.path.basename(os.fspath(path))
    data["problems"] = problems + data["problems"]
    return data


def build(entries: list[dict[str, Any]], limits: Limits) -> dict[str, Any]:
    """Group entries into runs (each metadata line starts one) and turn each into page data."""
    groups: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for entry in entries:
        if entry.get("type") == "metadata":
            groups.append((entry, []))
            continue
        if not groups:
            groups.append(({}, []))
        groups[-1][1].append(entry)
    runs = [run_data(meta, iterations, limits) for meta, iterations in groups]
    problems = [] if runs else ["the log holds no metadata and no iteration lines"]
    return {"runs": runs, "problems": problems}


def run_data(meta: dict[str, Any], iterations: list[dict[str, Any]], limits: Limits, depth: int = 0) -> dict[str, Any]:
    """One run: metadata, iterations with their code blocks and sub-calls, how it ended, and its totals."""
    items = [_iteration(i, it, limits, depth) for i, it in enumerate(iterations, 1)]
    end = _end(meta, iterations)
    root = sum_usage(it["usage"] for it in items)
    subs = sum_usage(block["calls"]["usage"] for it in items for block in it["blocks"])
    return {
        "metadata": {k: meta.get(k) for k in ("root_model", "max_depth", "max_iterations", "backend")}
        | {
            "environment": meta.get("environment_type"),
            "isolation": (meta.get("environment_kwargs") or {}).get("isolation"),
            "timestamp": meta.get("timestamp"),
            "sub_models": meta.get("other_backends"),
        },
        "query": clip(_query(iterations), limits.text),
        "iterations": items,
        "end": end,
        "totals": {
            "iterations": len(items),
            "code_blocks": sum(len(it["blocks"]) for it in items),
            "sub_calls": sum(block["calls"]["count"] for it in items for block in it["blocks"]),
            "root_usage": root,
            "sub_usage": subs,
            "usage": end.get("usage") or sum_usage([root, subs]),
            "time": end.get("execution_time") or sum(it["time"] or 0 for it in items),
        },
    }


def _iteration(number: int, entry: dict[str, Any], limits: Limits, depth: int) -> dict[str, Any]:
    blocks = [_block(block, limits, depth) for block in entry.get("code_blocks") or [] if isinstance(block, dict)]
    return {
        "n": entry.get("iteration", number),
        "response": clip(entry.get("response") or "", limits.text),
        "blocks": blocks,
        "final": clip(entry.get("final_answer"), limits.text),
        "time": _number(entry.get("iteration_time")),
        "usage": usage_of(entry.get("usage")),
    }


def _block(block: dict[str, Any], limits: Limits, depth: int) -> dict[str, Any]:
    result = block.get("result") or {}
    calls = [c for c in result.get("rlm_calls") or [] if isinstance(c, dict)]
    stats = call_stats(calls)
    stats["sample"] = [_call(c, limits, depth) for c in _sample(calls, limits.sample_calls)]
    stats["children"] = [
        run_data(c["metadata"].get("run_metadata") or {}, c["metadata"].get("iterations") or [], limits, depth + 1)
        | {"prompt": clip(c.get("prompt"), limits.call_text), "response": clip(c.get("response"), limits.call_text)}
        for c in calls
        if isinstance(c.get("metadata"), dict) and depth < 8
    ][: limits.children]
    return {
        "code": clip(block.get("code") or "", limits.text),
        "stdout": clip(result.get("stdout") or "", limits.text),
        "stderr": clip(result.get("stderr") or "", limits.text),
        "time": _number(result.get("execution_time")),
        "final": clip(result.get("final_answer"), limits.text),
        "calls": stats,
    }


def _call(call: dict[str, Any], limits: Limits, depth: int) -> dict[str, Any]:
    return {
        "kind": call.get("kind") or ("rlm" if call.get("metadata") else "llm"),
        "model": call.get("root_model"),
        "prompt": clip(call.get("prompt"), limits.call_text),
        "response": clip(call.get("response"), limits.call_text),
        "time": _number(call.get("execution_time")),
        "error": clip(call.get("error"), limits.call_text),
    }


def _sample(calls: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """The first calls, the failed ones, and the slowest, up to `size`, in their original order."""
    if len(calls) <= size:
        return calls
    chosen = set(range(size // 2))
    failed = [i for i, c in enumerate(calls) if c.get("error") or str(c.get("response", "")).startswith("[Error]")]
    slowest = sorted(range(len(calls)), key=lambda i: -(_number(calls[i].get("execution_time")) or 0))
    for index in failed + slowest:
        if len(chosen) >= size:
            break
        chosen.add(index)
    return [calls[i] for i in sorted(chosen)]


def _end(meta: dict[str, Any], iterations: list[dict[str, Any]]) -> dict[str, Any]:
    """How the run ended: recorded by our logger in `run_end`, else inferred from an official log."""
    recorded = iterations[-1].get("run_end") if iterations else None
    if isinstance(recorded, dict):
        end = dict(recorded)
        end["usage"] = usage_of(end.get("usage"))
        end["inferred"] = False
        for key in ("answer", "extracted", "error"):
            end[key] = clip(end.get(key), 4000)
        return end
    final = next((it.get("final_answer") for it in reversed(iterations) if it.get("final_answer") is not None), None)
    limit = meta.get("max_iterations")
    if final is not None:
        reason = "final"
    elif iterations and isinstance(limit, int) and len(iterations) >= limit:
        reason = "max_iterations"
    else:
        reason = "unknown"
    return {"finish_reason": reason, "answer": clip(final, 4000), "inferred": True, "notes": []}


def _query(iterations: list[dict[str, Any]]) -> str | None:
    """The question, from the first root prompt's first user message, when the log kept the prompt."""
    prompt = iterations[0].get("prompt") if iterations else None
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        for message in prompt:
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else json.dumps(content, default=str)
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
