"""What an interpreter factory contributes to a call, checked and applied as `dspy.RLM` does.

A factory is a zero-argument callable returning a `dspy.CodeInterpreter`; an interpreter object itself is refused
(its ownership would be ambiguous). Its optional `execution_instructions` string describes the runtime and replaces
the "Execution environment" part of the `generate_action` instructions: at construction for the factory active then,
and per call (only that fragment, so an optimizer's other edits stay) when a call runs on another runtime.
"""

from __future__ import annotations

from typing import Any

import dspy
from dspy.primitives.code_interpreter import CodeInterpreter

from rlm_plugins.dspy.signatures import EXECUTION_RULES


def validate_interpreter_factory(factory: Any, name: str = "interpreter_factory") -> None:
    """Raise `TypeError` (dspy.RLM's class and wording) unless `factory` can make interpreters."""
    if not isinstance(factory, type) and isinstance(factory, CodeInterpreter):
        raise TypeError(
            f"{name} received an object that already implements CodeInterpreter, so its ownership is ambiguous. "
            "If this object also creates interpreters, pass a dedicated zero-argument creation callable instead."
        )
    if not callable(factory):
        raise TypeError(
            f"{name} must be a zero-argument callable that creates a CodeInterpreter, not {type(factory).__name__}."
        )


def execution_instructions_of(factory: Any) -> str:
    """The factory's `execution_instructions` ("" when it has none); a non-string is a `TypeError`."""
    instructions = getattr(factory, "execution_instructions", "")
    if not isinstance(instructions, str):
        raise TypeError("interpreter_factory.execution_instructions must be a string")
    return instructions


def execution_rules(instructions: str) -> str:
    """The "Execution environment" fragment of the action instructions: the runtime's own text, else ours."""
    return f"\nExecution environment:\n{instructions}\n" if instructions else EXECUTION_RULES


def with_execution_rules(signature: type[dspy.Signature], old: str, new: str) -> type[dspy.Signature]:
    """`signature` with the fragment `old` replaced by `new` (appended when an optimizer dropped `old`)."""
    if old == new:
        return signature
    current = signature.instructions
    if old and old in current:
        return signature.with_instructions(current.replace(old, new, 1))
    return signature.with_instructions(current + new)
