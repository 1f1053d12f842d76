"""An RLM run's progress in LangGraph's `stream_mode="custom"`: each engine event goes to the node's stream writer.

`graph.stream(..., stream_mode="custom")` then yields `{"name": "rlm_root_step", "data": {...}}` items (the names and
data of the custom events `astream_events` shows) while the run goes on. The writer is looked up when the ChatRLM
call starts, in the node's context: the engine's worker threads, where context variables do not follow, reuse it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Writer = Callable[[Any], None]


def graph_writer() -> Writer | None:
    """The stream writer of the LangGraph node this call runs in; None outside a graph (or without langgraph)."""
    try:
        from langgraph.config import get_stream_writer
    except ImportError:  # pragma: no cover - langgraph ships with the langchain extra
        return None
    try:
        return get_stream_writer()
    except (RuntimeError, KeyError):  # not inside a graph node: no runnable context, or one without a runtime
        return None


def progress_item(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """What the stream writer gets for one engine event."""
    return {"name": name, "data": data}
