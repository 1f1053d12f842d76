"""`RLMChatCompletion`: what `RLM.completion` returns, an `RLMResult` with the official `rlms` result's fields."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rlm_plugins.core.result import RLMResult


@dataclass
class RLMChatCompletion(RLMResult):
    """An `RLMResult` shaped like the official package's `RLMChatCompletion`.

    `root_model` is the root model's name (`backend_kwargs["model_name"]` with `backend=`), `prompt` the input
    the call was given, `metadata` the logger's trajectory (`{"run_metadata", "iterations"}`) when an `RLMLogger`
    was passed, else None, as in the official package; `usage_summary` (per model name) and `execution_time` come
    from `RLMResult`, as do our own fields (`finish_reason`, `answer`, `steps`, `trajectory`, `cost_report`, ...).
    """

    root_model: str = ""
    prompt: Any = None
    metadata: dict[str, Any] | None = None

    @classmethod
    def of(
        cls, result: RLMResult, *, root_model: str, prompt: Any, metadata: dict[str, Any] | None
    ) -> RLMChatCompletion:
        """The completion for a finished run's result."""
        values = {f.name: getattr(result, f.name) for f in dataclasses.fields(RLMResult)}
        return cls(**values, root_model=root_model, prompt=prompt, metadata=metadata)

    def to_dict(self) -> dict[str, Any]:
        """The official `RLMChatCompletion.to_dict()`, plus `finish_reason` (and `error` when there was one)."""
        out: dict[str, Any] = {
            "root_model": self.root_model,
            "prompt": self.prompt,
            "response": self.response,
            "usage_summary": self.usage_summary.to_dict(),
            "execution_time": self.execution_time,
            "finish_reason": self.finish_reason,
        }
        if self.metadata is not None:
            out["metadata"] = self.metadata
        if self.error is not None:
            out["error"] = self.error
        return out
