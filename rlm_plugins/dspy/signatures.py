"""The internal signatures of `rlm_plugins.dspy.RLM`, derived from the user's signature as `dspy.RLM` derives its own.

`generate_action` maps (variables_info, repl_history, iteration) to (reasoning, code); `extract` maps
(variables_info, repl_history) to the user's output fields. Children started by `rlm_query` (depth > 0) reuse the
`generate_action` predictor with `child_action_signature`, whose task is a plain query over `context` ending in
`FINAL(answer)`. The instruction templates are module-level constants, so they can be read and diffed in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dspy
from dspy.adapters.utils import translate_field_type
from dspy.primitives.repl_types import REPLHistory

ACTION_INSTRUCTIONS_TEMPLATE = """You are tasked with producing the following outputs given the inputs {inputs}:
{output_fields}

You have access to a persistent Python REPL. Write Python code and it will be executed. You will see the output, then \
write more code based on what you learned. This is an iterative process.
{execution_rules}
Available:
- Variables: {inputs} (your input data, already loaded; you never see them except through code)
- `llm_query(prompt)` - query a sub-LLM (~500K char capacity) for semantic analysis
- `llm_query_batched(prompts)` - query multiple prompts concurrently, answers in order (much faster for many queries)
- `rlm_query(prompt, context=None)` - a recursive sub-RLM with its own REPL, for sub-tasks too large for one prompt
- `SHOW_VARS()` - the names, types and sizes of your variables
- `print()` - ALWAYS print to see results; the value of a last-line expression is shown too
- `SUBMIT({final_output_names})` - submit final output when done

IMPORTANT: This is ITERATIVE. Each code block you write will execute, you'll see the output, then you decide what to \
do next. Do NOT try to solve everything in one step.

1. EXPLORE FIRST - Look at your data before processing it. Print samples, check types/lengths, understand the structure.
2. ITERATE - Write small code snippets, observe outputs, then decide next steps. State persists between iterations.
3. VERIFY BEFORE SUBMITTING - If results seem wrong (zeros, empty, unexpected), reconsider your approach.
4. USE llm_query FOR SEMANTICS - String matching finds WHERE things are; llm_query understands WHAT things mean.
5. MINIMIZE RETYPING (INPUTS & OUTPUTS) - When values are long, precise, or error-prone (IDs, numbers, code, quotes), \
re-access them via variables and parse/compute in code instead of retyping.
6. SUBMIT ONLY AFTER SEEING OUTPUTS - SUBMIT ends the run immediately. If you need to inspect printed output, run it \
in one step, review the result, then call SUBMIT in a later step.

You have max {max_llm_calls} sub-LLM calls. When done, call SUBMIT() with your output."""

EXECUTION_RULES = """
Execution environment:
Code runs as Python in a persistent sandboxed process. The inputs are loaded once; reassigning them sticks. Output \
longer than the limit is cut inside the sandbox, so print summaries, not whole inputs.
"""

CHILD_TASK = "Answer the query given in variables_info, using the data in `context`. Give the answer as text."

EXTRACT_INSTRUCTIONS = """Based on the REPL trajectory, extract the final outputs now.

Review your trajectory to see what information you gathered and what values you computed, then provide the final \
outputs."""

VARIABLES_DESC = "Metadata about the variables available in the REPL"
HISTORY_DESC = "Previous REPL code executions and their outputs"
ITERATION_DESC = "Current iteration number (1-indexed) out of max_iters"
REASONING_DESC = "Think step-by-step: what do you know? What remains? Plan your next action."
CODE_DESC = "Python code to execute. Use markdown code block format: ```python\\n<code>\\n```"


def format_tool_docs(tools: Mapping[str, Any]) -> str:
    """One line per user tool (`dspy.Tool`), as `dspy.RLM` lists them in its instructions."""
    if not tools:
        return ""
    lines = ["\nAdditional tools available (use these instead of standard library equivalents):"]
    for tool in tools.values():
        params = ", ".join(f"{name}: {schema.get('type', 'Any')}" for name, schema in (tool.args or {}).items())
        desc = (tool.desc or "No description").replace("\n", "  ")
        lines.append(f"- `{tool.name}({params})` - {desc}")
    return "\n".join(lines)


def action_instructions(signature: type[dspy.Signature], max_llm_calls: int, tool_docs: str = "") -> str:
    """The `generate_action` instructions for a user signature: its own instructions, then the REPL rules."""
    inputs = ", ".join(f"`{name}`" for name in signature.input_fields)
    outputs = "\n".join(f"- {translate_field_type(n, f)}" for n, f in signature.output_fields.items())
    task = f"{signature.instructions}\n\n" if signature.instructions else ""
    body = ACTION_INSTRUCTIONS_TEMPLATE.format(
        inputs=inputs,
        output_fields=outputs,
        final_output_names=", ".join(signature.output_fields),
        max_llm_calls=max_llm_calls,
        execution_rules=EXECUTION_RULES,
    )
    return task + body + tool_docs


def build_action_signature(instructions: str) -> type[dspy.Signature]:
    """(variables_info, repl_history, iteration) -> (reasoning, code), with `instructions`."""
    return (
        dspy.Signature({}, instructions)
        .append("variables_info", dspy.InputField(desc=VARIABLES_DESC), type_=str)
        .append("repl_history", dspy.InputField(desc=HISTORY_DESC), type_=REPLHistory)
        .append("iteration", dspy.InputField(desc=ITERATION_DESC), type_=str)
        .append("reasoning", dspy.OutputField(desc=REASONING_DESC), type_=str)
        .append("code", dspy.OutputField(desc=CODE_DESC), type_=str)
    )


def build_extract_signature(signature: type[dspy.Signature]) -> type[dspy.Signature]:
    """(variables_info, repl_history) -> the user's output fields."""
    task = ""
    if signature.instructions:
        task = f"The trajectory was generated with the following objective: \n{signature.instructions}\n\n"
    extract = dspy.Signature({**signature.output_fields}, task + EXTRACT_INSTRUCTIONS)
    extract = extract.prepend("repl_history", dspy.InputField(desc="Your REPL interactions so far"), type_=REPLHistory)
    return extract.prepend("variables_info", dspy.InputField(desc=VARIABLES_DESC), type_=str)


def build_signatures(
    signature: type[dspy.Signature], max_llm_calls: int, tool_docs: str = ""
) -> tuple[type[dspy.Signature], type[dspy.Signature], type[dspy.Signature], type[dspy.Signature]]:
    """The action and extract signatures of the root run, and of the `rlm_query` children."""
    action = build_action_signature(action_instructions(signature, max_llm_calls, tool_docs))
    child = dspy.Signature("context -> answer", CHILD_TASK)
    child_action = build_action_signature(action_instructions(child, max_llm_calls, tool_docs))
    return action, build_extract_signature(signature), child_action, build_extract_signature(child)
