"""The tasks by name; `TASK:VARIANT` picks one variant (e.g. `niah:indirect`)."""

from __future__ import annotations

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.evals import aggregate, codeqa, multihop, niah, pairs
from rlm_plugins.evals.base import Task

TASKS: dict[str, Task] = {
    task.name: task for task in (niah.TASK, aggregate.TASK, pairs.TASK, multihop.TASK, codeqa.TASK)
}


def get_task(spec: str) -> tuple[Task, str | None]:
    """The task and the variant a `TASK` or `TASK:VARIANT` spec names."""
    name, _, variant = spec.partition(":")
    if name not in TASKS:
        raise ConfigurationError(f"unknown task {name!r}; use one of {sorted(TASKS)}")
    task = TASKS[name]
    if variant and variant not in task.variants:
        raise ConfigurationError(f"{name} has no variant {variant!r}; use one of {list(task.variants)}")
    return task, variant or None
