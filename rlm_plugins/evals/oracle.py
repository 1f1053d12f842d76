"""Offline models for the harness: the oracle root (the ideal solution's replies), the scripted sub-model that
answers its sub-call prompts, and a perfect direct reader.

They prove the harness and the tasks (real code in the real sandbox over the real generated context), not model
quality. Their usage is an estimate (characters / 4), so offline reports still show how cost grows with size.
"""

from __future__ import annotations

from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.ports import Completion, Usage
from rlm_plugins.evals.base import CHARS_PER_TOKEN, EvalExample
from rlm_plugins.evals.registry import TASKS

ORACLE = "oracle"
"""The model name that selects the offline models."""
_EXTRACT_MARK = "no more code will run"


def _usage(prompt: str, reply: str) -> Usage:
    return Usage(1, len(prompt) // CHARS_PER_TOKEN, len(reply) // CHARS_PER_TOKEN, None)


class OracleRoot:
    """A chat callable replaying the oracle's replies for one example, turn by turn."""

    def __init__(self, example: EvalExample) -> None:
        self.replies = TASKS[example.task].oracle(example)

    def __call__(self, messages: list[dict[str, str]]) -> Completion:
        prompt = "".join(m["content"] for m in messages)
        if _EXTRACT_MARK in messages[-1]["content"]:
            reply = "NONE"
        else:
            turn = sum(1 for m in messages if m["role"] == "assistant")
            reply = self.replies[min(turn, len(self.replies) - 1)]
        return Completion(reply, _usage(prompt, reply), ORACLE)


def oracle_policy(example: EvalExample) -> ChatPolicy:
    """The root policy of an ideal model for `example`."""
    return ChatPolicy(OracleRoot(example), model=ORACLE)


def oracle_answer(prompt: str) -> Completion:
    """The scripted sub-model: answers every task's oracle sub-call prompts the way a reader would."""
    for task in TASKS.values():
        reply = task.sub_answer(prompt)
        if reply is not None:
            return Completion(reply, _usage(prompt, reply), "oracle-sub")
    return Completion("NONE", _usage(prompt, "NONE"), "oracle-sub")


def oracle_sub() -> CallableSubModel:
    return CallableSubModel(oracle_answer, name="oracle-sub")
