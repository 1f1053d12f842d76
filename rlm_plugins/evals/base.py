"""What every evaluation task is: a generator of examples, a scorer, an oracle solution and its sub-model.

Generators are pure functions of (seed, size): the same arguments give the same bytes on every machine and
Python version (`random.Random` seeded with a string is stable). `size` is the context length in tokens, taken
as 4 characters each.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlm_plugins.errors import ConfigurationError

CHARS_PER_TOKEN = 4


@dataclass
class EvalExample:
    """One generated example: the long `context`, the `question` about it, and the exact `answer`."""

    task: str
    id: str
    context: str
    question: str
    answer: Any
    meta: dict[str, Any] = field(default_factory=dict)
    """What the scorer and the oracle need: the variant, the candidates of a choice, the asked key..."""

    @property
    def tokens(self) -> int:
        """The context's length in tokens, estimated as characters / 4."""
        return len(self.context) // CHARS_PER_TOKEN


@dataclass(frozen=True)
class Task:
    """A task: how to make an example, score an answer, and solve it as an ideal root model would.

    Args:
        name: the task's name on the command line.
        generate: (rng, size in tokens, variant) -> an EvalExample whose id `make_examples` sets.
        score: (answer, example) -> a score in [0, 1].
        oracle: example -> the replies an ideal root model writes, turn by turn (```repl blocks).
        sub_answer: prompt -> the scripted sub-model's reply to the oracle's sub-call prompts, or None when the
            prompt is not this task's.
        variants: the kinds of question the task asks; examples cycle through them.
        profile: what makes the task hard, and for whom.
    """

    name: str
    generate: Callable[[random.Random, int, str], EvalExample]
    score: Callable[[Any, EvalExample], float]
    oracle: Callable[[EvalExample], list[str]]
    sub_answer: Callable[[str], str | None]
    variants: tuple[str, ...]
    profile: str
    default_size: int = 8_000


def make_examples(
    task: Task, n: int, seed: int = 0, size: int | None = None, variant: str | None = None
) -> list[EvalExample]:
    """`n` examples of `task`, deterministic in (task, seed, size, index, variant)."""
    size = task.default_size if size is None else size
    if size < 500:
        raise ConfigurationError(f"size={size} tokens is too small; pass --size 500 or more")
    if n < 1:
        raise ConfigurationError(f"n={n} must be at least 1")
    if variant is not None and variant not in task.variants:
        raise ConfigurationError(f"{task.name} has no variant {variant!r}; use one of {list(task.variants)}")
    examples = []
    for index in range(n):
        kind = variant or task.variants[(seed + index) % len(task.variants)]
        rng = random.Random(f"{task.name}:{kind}:{seed}:{size}:{index}")
        example = task.generate(rng, size, kind)
        example.id = f"{task.name}-{kind}-s{seed}-{size}-{index}"
        example.meta.setdefault("variant", kind)
        examples.append(example)
    return examples
