"""What a chat root model is told: the system prompt, each turn's prompt, and the last-chance extract prompt.

The root model never sees the long input itself, only what `describe_value` says about it: type, sizes and a
short preview. Templates are module-level constants so they can be read, diffed and overridden in one place.
"""

from __future__ import annotations

import itertools
import pathlib
from collections.abc import Sized
from typing import Any

from rlm_plugins.core.ports import ContextInfo, RunState, ToolSpec

SYSTEM_TEMPLATE = """\
You are a Recursive Language Model (RLM). You answer a query about data that is too long to read in one prompt. \
The data is loaded in a persistent Python REPL; you never see it directly, only the summary below. You work in \
turns: each turn, write Python in ```repl blocks; they run in order and you read their real output on the next \
turn. Variables, imports and functions persist between turns.

## What the REPL holds
{variables}

## Functions in the REPL
{functions}

## How output works
- Whatever you print is shown to you, and, as in an interactive interpreter, the value of a block's last line is \
shown too when that line is an expression (`len(context)` alone shows the length).
- The output of each block is truncated to {max_output_chars:,} characters. Never print the data wholesale: slice, \
search, count and parse it in code, keep results in variables, and print short summaries.
- Semantic work over the data (reading, extracting, classifying, judging) belongs to sub-calls: split the data into \
chunks that fit a sub-model's prompt, run `llm_query_batched` over them, then aggregate the answers in code.

## How to work
1. First look at the data: its type, size and a few samples. Do not answer before you have looked.
2. Plan how to split the work into code steps and sub-calls, then run it one step per turn.
3. Check a sample of each intermediate result before you build on it.
4. {ending}

Write code only in ```repl blocks, for example:
```repl
print(type(context), len(context))
print(context[:500])
```
End your reply right after your code: the REPL output comes back on the next turn. Never write the output yourself.\
"""

FINAL_ENDING = (
    "End by calling `FINAL(answer)` or `FINAL_VAR(variable_name)` inside a ```repl block, after you have seen the "
    "output that supports the answer. A `FINAL(...)` written as plain text is accepted only in a reply with no code."
)
ANSWER_ENDING = (
    'End by setting `answer["content"] = ...` and then `answer["ready"] = True` inside a ```repl block, after you '
    "have seen the output that supports the answer."
)
FINAL_STYLES = ("final", "answer")
"""How the system prompt teaches a run to end: `FINAL(...)` / `FINAL_VAR(...)`, or the official `rlms` 0.1.3
`answer` dict. The REPL accepts both either way."""
CUSTOM_TEMPLATE = "{custom}\n\n## What the REPL holds\n{variables}\n\n## Functions in the REPL\n{functions}"
SUBMIT_ENDING = (
    "End by calling `SUBMIT({fields})` inside a ```repl block, with every output field, after you have seen the "
    "output that supports them."
)

TURN_TEMPLATE = "Query: {query}\n\nTurn {turn} of {max_turns}."
FIRST_TURN_NUDGE = (
    "You have not looked at the data yet. Start by inspecting it in a ```repl block (type, length, a sample); "
    "do not answer yet."
)
NEXT_TURN_NUDGE = "Continue: write the next ```repl block, or end the run once the output above supports an answer."
FEW_TURNS_LEFT = (
    "Only {left} turns are left, this one included. Converge now: compute what is still missing and end the run "
    "with your best supported answer."
)
LAST_TURN = "This is your last turn: end the run in this reply with your best answer."

EXTRACT_TEMPLATE = """\
The turn budget is used up: no more code will run. Query: {query}

Using what the REPL output above showed, give your final answer now. {shape}\
"""
EXTRACT_TEXT = "Reply with the answer only: no code, no preamble."
EXTRACT_FIELDS = "Reply with only a JSON object with the keys {fields}, and no code."

_FEW_TURNS = 3
_CHUNKS_SHOWN = 100
_INPUT_CHARS = 1_000
_PREVIEW_DEPTH = 4


def describe_value(name: str, value: Any, preview_chars: int = 500) -> ContextInfo:
    """What the root model is told about a REPL variable: type, size, item sizes and a short preview.

    The preview is built from slices, so a 50 MB string or a million-item list costs no more than a small one.
    A `pathlib.Path` is described as the file it names, reading only its first bytes.
    """
    if isinstance(value, pathlib.Path):
        return _describe_file(name, value, preview_chars)
    chunks = None
    if isinstance(value, (list, tuple)):
        chunks = [_size(item) for item in itertools.islice(value, _CHUNKS_SHOWN)]
    elif isinstance(value, dict):
        chunks = [_size(item) for item in itertools.islice(value.values(), _CHUNKS_SHOWN)]
    preview = _preview(value, preview_chars)
    length = len(value) if isinstance(value, Sized) else len(preview)
    return ContextInfo(name, _type_name(value), length, chunks, preview)


def _describe_file(name: str, path: pathlib.Path, preview_chars: int) -> ContextInfo:
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(preview_chars * 4)
    except OSError as exc:
        return ContextInfo(name, "file", 0, None, f"(unreadable: {exc})")
    return ContextInfo(name, f"file {path.name}", size, None, head.decode("utf-8", "replace")[:preview_chars])


def _type_name(value: Any) -> str:
    name = type(value).__name__
    if isinstance(value, (list, tuple)) and value:
        kinds = {type(item).__name__ for item in itertools.islice(value, _CHUNKS_SHOWN)}
        if len(kinds) == 1:
            return f"{name}[{kinds.pop()}]"
    return name


def _size(item: Any) -> int:
    return len(item) if isinstance(item, Sized) else len(str(item))


def _preview(value: Any, limit: int) -> str:
    """A short text of `value` of at most `limit` characters, never rendering more than it shows."""
    if limit <= 0:
        return ""
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value[: limit * 4]).decode("utf-8", "replace")[:limit]
    return _short_repr(value, limit)


def _short_repr(value: Any, limit: int, depth: int = 0) -> str:
    if isinstance(value, str):
        return repr(value[:limit])[:limit]
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value[:limit]))[:limit]
    if isinstance(value, (list, tuple, dict)):
        if depth >= _PREVIEW_DEPTH:
            return "..."[:limit]
        opening, closing = ("{", "}") if isinstance(value, dict) else ("(", ")") if isinstance(value, tuple) else "[]"
        items = value.items() if isinstance(value, dict) else value
        text = opening
        for index, item in enumerate(items):
            room = limit - len(text)
            if room <= 0:
                break
            if isinstance(value, dict):
                key = _short_repr(item[0], room, depth + 1)
                part = f"{key}: {_short_repr(item[1], max(room - len(key) - 2, 0), depth + 1)}"
            else:
                part = _short_repr(item, room, depth + 1)
            text += (", " if index else "") + part
        return (text + closing)[:limit] if len(text) < limit else text[: max(limit - 3, 0)] + "..."
    try:
        return repr(value)[:limit]
    except Exception:
        return f"<{type(value).__name__}>"[:limit]


def system_prompt(state: RunState, final_style: str = "final", custom: str | None = None) -> str:
    """The root model's standing instructions: what the REPL holds, the functions it offers, and how to end.

    `final_style` ("final" or "answer", see `FINAL_STYLES`) picks the ending taught; `custom` replaces the
    instructions, followed by what the REPL holds and its functions.
    """
    functions = "\n".join(_functions(state, final_style))
    if custom is not None:
        return CUSTOM_TEMPLATE.format(custom=custom.strip(), variables=_variables(state), functions=functions)
    if state.final_fields:
        ending = SUBMIT_ENDING.format(fields=", ".join(f"{name}=..." for name in state.final_fields))
    else:
        ending = ANSWER_ENDING if final_style == "answer" else FINAL_ENDING
    return SYSTEM_TEMPLATE.format(
        variables=_variables(state),
        functions=functions,
        max_output_chars=state.max_output_chars,
        ending=ending,
    )


def _variables(state: RunState) -> str:
    lines = [_variable(info) for info in state.variables]
    shown = {info.name for info in state.variables}
    for name, value in state.inputs.items():
        if name not in shown:
            lines.append(f"- `{name}` = {_short_repr(value, _INPUT_CHARS)}")
    return "\n".join(lines) or "- (no variables were loaded)"


def _variable(info: ContextInfo) -> str:
    if info.type.startswith("file"):
        unit = "byte"
    elif info.type.startswith(("list", "tuple", "dict")):
        unit = "key" if info.type == "dict" else "item"
    else:
        unit = "byte" if info.type in ("bytes", "bytearray") else "character"
    text = f"- `{info.name}`: {info.type}, {_count(info.length, unit)}"
    if info.chunk_lengths:
        which = "values" if info.type == "dict" else "items"
        total = sum(info.chunk_lengths)
        if len(info.chunk_lengths) >= info.length:
            text += f"; lengths of the {which}: {info.chunk_lengths} (total {total:,})"
        else:
            text += f"; lengths of the first {len(info.chunk_lengths)} {which}: {info.chunk_lengths} (sum {total:,})"
    if info.preview:
        text += f"\n  Preview (first {len(info.preview):,} characters):\n" + _indent(info.preview)
    return text


def _count(number: int, unit: str) -> str:
    return f"{number:,} {unit}" + ("" if number == 1 else "s")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _functions(state: RunState, final_style: str = "final") -> list[str]:
    lines = [
        "- `llm_query(prompt: str) -> str`: one sub-model call. The sub-model sees only the prompt you pass (no "
        "REPL, no variables), so put the chunk of data and the question in it. It reads far more than you can "
        "print: give it large chunks.",
        "- `llm_query_batched(prompts: list[str]) -> list[str]`: many `llm_query` calls at once, answers in the "
        "same order. A failed call returns an error text in its slot instead of raising. Prefer it to a loop.",
    ]
    if state.depth < state.max_depth:
        lines.append(
            "- `rlm_query(prompt: str, context=None) -> str`: a sub-RLM with its own REPL, holding `context` "
            "(when given) as its `context`. Use it for a sub-task that needs several steps of its own."
        )
    if state.final_fields:
        fields = ", ".join(f"{name}=..." for name in state.final_fields)
        lines.append(f"- `SUBMIT({fields})`: end the run with these output fields.")
    elif final_style == "answer":
        lines.append(
            '- `answer`: a dict, `{"content": "", "ready": False}`. Set `answer["content"]` to the answer, then '
            '`answer["ready"] = True`: the run ends after that block.'
        )
    else:
        lines.append("- `FINAL(value)`: end the run with `value` as the answer.")
        lines.append("- `FINAL_VAR(name: str)`: end the run with the REPL variable called `name` as the answer.")
    lines.append("- `SHOW_VARS()`: list the variables you have defined, with their types and sizes.")
    lines.extend(_tool(tool) for tool in state.tools)
    return lines


def _tool(tool: ToolSpec) -> str:
    signature = tool.signature if tool.signature.startswith(tool.name) else tool.name + tool.signature
    doc = " ".join(tool.doc.split())
    return f"- `{signature}`" + (f": {doc}" if doc else "")


def user_prompt(state: RunState) -> str:
    """The prompt of the current turn: the query, the turn count, and a nudge for the first and the last turns.

    `state.iteration` is the number of the current turn, counting from 1 (as the engine does).
    """
    turn = max(state.iteration, 1)
    left = state.max_iterations - turn + 1
    text = TURN_TEMPLATE.format(query=_query(state), turn=turn, max_turns=state.max_iterations)
    if left <= 1:
        return f"{text} {LAST_TURN}"
    text += " " + (NEXT_TURN_NUDGE if state.history else FIRST_TURN_NUDGE)
    if left <= _FEW_TURNS:
        text += " " + FEW_TURNS_LEFT.format(left=left)
    return text


def _query(state: RunState) -> str:
    return state.query.strip() or "(no query text: the task is described by the REPL variables)"


def extract_prompt(state: RunState) -> str:
    """The last-chance prompt once the budget is gone: answer from what was seen, without running code."""
    if state.final_fields:
        shape = EXTRACT_FIELDS.format(fields=", ".join(repr(name) for name in state.final_fields))
    else:
        shape = EXTRACT_TEXT
    return EXTRACT_TEMPLATE.format(query=_query(state), shape=shape)
