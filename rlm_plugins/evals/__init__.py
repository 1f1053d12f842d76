"""Long-context evaluation tasks generated locally (needles, aggregation, pairs, multi-hop, code QA), their exact
scorers and oracle solutions, and a runner that compares the RLM with the plain model on score, cost and time."""

from rlm_plugins.evals.base import EvalExample, Task, make_examples
from rlm_plugins.evals.dspy_set import as_dspy
from rlm_plugins.evals.methods import METHODS, Settings, run_method
from rlm_plugins.evals.oracle import ORACLE, oracle_answer, oracle_policy, oracle_sub
from rlm_plugins.evals.registry import TASKS, get_task
from rlm_plugins.evals.report import render_report
from rlm_plugins.evals.runner import EvalConfig, read_rows, run_eval
from rlm_plugins.evals.summary import summarize

__all__ = [
    "METHODS",
    "ORACLE",
    "TASKS",
    "EvalConfig",
    "EvalExample",
    "Settings",
    "Task",
    "as_dspy",
    "get_task",
    "make_examples",
    "oracle_answer",
    "oracle_policy",
    "oracle_sub",
    "read_rows",
    "render_report",
    "run_eval",
    "run_method",
    "summarize",
]
