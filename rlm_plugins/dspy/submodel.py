"""`LMSubModel`: what `llm_query` calls, over a DSPy LM, so DSPy sees every sub-call.

Each sub-call goes through the LM's own `__call__` / `acall`, so it lands in `lm.history` and
`dspy.inspect_history`, fires `on_lm_start`/`on_lm_end` callbacks, counts in `track_usage`, and is served from
DSPy's cache when an identical request was made before. Its tokens and cost go to the engine's budget too, and a
provider failure (rate limit, auth, timeout) becomes a `SubModelError` that says what to do.

`failed_sub_call` is how failures reach the model's code, as in `dspy.RLM`: a slot of `llm_query_batched` whose
LM failed reads `[ERROR] <message>`; anything else (a failed `llm_query`, a programming error such as a
`TypeError` from a misbehaving LM) is raised inside the code.
"""

from __future__ import annotations

from typing import Any

import dspy
from dspy.utils.exceptions import LMError, format_error_for_lm

from rlm_plugins.core.model_errors import causes
from rlm_plugins.core.ports import Completion
from rlm_plugins.dspy._context import applied, capture
from rlm_plugins.dspy._usage import metered


class LMSubModel:
    """The engine's SubModel over `lm`, or over `dspy.settings.lm` looked up at each call when `lm` is None.

    The `dspy.context` in force when the sub-model is made (the module call's) is re-applied around every query,
    because queries arrive on the sandbox's tool threads, which do not inherit it.

    Args:
        lm: the LM to query (`RLM(sub_lm=...)`); None means the configured `dspy.settings.lm`.
        overrides: the captured `dspy.context` overrides; captured from the caller when None.

    Examples:
        >>> sub = LMSubModel(dspy.utils.DummyLM([{"answer": "4"}]))  # doctest: +SKIP
        >>> sub.query("2 + 2?")  # doctest: +SKIP
    """

    def __init__(self, lm: Any = None, overrides: dict[str, Any] | None = None) -> None:
        self.lm = lm
        self.overrides = capture() if overrides is None else overrides
        with applied(self.overrides):
            target = lm if lm is not None else dspy.settings.lm
        self.name = str(getattr(target, "model", None) or "sub_lm")

    def _target(self) -> Any:
        target = self.lm if self.lm is not None else dspy.settings.lm
        if target is None:
            raise dspy.LMNotConfiguredError(
                "No LM configured for llm_query. Use dspy.configure(lm=dspy.LM(...)) or pass sub_lm= to RLM."
            )
        return target

    def query(self, prompt: str) -> Completion:
        with metered(self.overrides, self.name, sub=True) as meter:
            lm = self._target()
            text = response_text(lm(prompt))
        return Completion(text, meter.usage(), str(getattr(lm, "model", self.name)))

    async def aquery(self, prompt: str) -> Completion:
        with metered(self.overrides, self.name, sub=True) as meter:
            lm = self._target()
            text = response_text(await lm.acall(prompt))
        return Completion(text, meter.usage(), str(getattr(lm, "model", self.name)))


def response_text(response: Any) -> str:
    """The text of an LM's answer: a `dspy.lm15.Response` or the first of a list of outputs, as `dspy.RLM` reads it."""
    if isinstance(response, dspy.lm15.Response):
        text = response.text
    elif isinstance(response, list) and response:
        first = response[0]
        text = first.get("text") if isinstance(first, dict) else first
    else:
        raise TypeError(
            f"the sub-LM must return a dspy.lm15.Response or a non-empty list of outputs, got {type(response).__name__}"
        )
    if not isinstance(text, str):
        raise TypeError(f"the sub-LM's response must contain text, got {type(text).__name__}")
    return text


def failed_sub_call(error: BaseException, batched: bool) -> str | None:
    """The engine's `sub_failure` for DSPy: `[ERROR] ...` for an LM failure in a batch slot, else raise (None)."""
    if not batched:
        return None
    lm_error = next((cause for cause in causes(error) if isinstance(cause, LMError)), None)
    return None if lm_error is None else f"[ERROR] {format_error_for_lm(lm_error)}"
