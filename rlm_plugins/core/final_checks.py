"""When a final answer may not be trusted: it was typed in before the model had read the output it rests on.

Small models answer in their first reply, before any REPL output exists ("print the context" in one block,
`FINAL("123456")` in the next). Two checks refuse such answers with a note, so the model reads the output and
answers on a later turn. Both concern a *literal* answer (a constant written in the reply, or a FINAL in prose);
a value the reply's code computed (`FINAL(len(context))`, `FINAL(answer)`, `FINAL_VAR("answer")`) rests on the
data and passes.

- premature: no earlier turn of this run ran code, so the model has seen nothing of the data. Not applied on the
  last turn (an answer now beats the extract step's guess), nor when the prompt already showed every variable in
  full (no variables, or texts shorter than their preview): then the model has read all there is.
- blind: code earlier in this same reply printed output the model has not read yet.
"""

from __future__ import annotations

import ast

from rlm_plugins.core.ports import RunState, Step

FINAL_CALLS = frozenset({"FINAL", "FINAL_VAR", "SUBMIT"})

PREMATURE = (
    "Your final answer was refused: you typed it in before you had seen any output of this run, so it cannot rest "
    "on the data. Look at the data first (its type, length and a sample), read the output, then answer on a later "
    "turn with a value your code computed."
)
BLIND_LITERAL = (
    "Your final answer {shown} was refused: code earlier in this reply printed output you have not read yet, and "
    "the answer is a literal you typed rather than a value your code computed. Read the output below, then answer "
    "on the next turn (or pass FINAL a variable your code computed)."
)


def final_problem(state: RunState, step: Step, code: str | None, *, refuse_premature: bool = True) -> str | None:
    """Why the final answer reached by `step` (in the block `code`, or in prose when None) is refused, or None.


    Args:
        state: the run state; `state.history` ends with `step`.
        step: the current turn, with the blocks run so far (the block that reached FINAL is the last one).
        code: the block that called FINAL, or None for a FINAL written in prose.
        refuse_premature: False turns both checks off.
    """
    if not refuse_premature:
        return None
    literal = "(written in prose)" if code is None else _literal_final(code)
    if literal is None:
        return None
    seen = _all_shown(state) or any(past.runs for past in state.history if past is not step)
    if not seen and state.iteration < state.max_iterations:
        return PREMATURE
    if code is not None and _unread_output(step):
        return BLIND_LITERAL.format(shown=_short(literal))
    return None


def _all_shown(state: RunState) -> bool:
    """Whether the prompt showed every REPL variable in full, so there is no data left to look at."""
    return all(
        info.type in ("str", "bytes", "bytearray") and len(info.preview) >= info.length for info in state.variables
    )


def _unread_output(step: Step) -> bool:
    """Whether blocks of this reply before the one that reached FINAL printed or raised something."""
    before = step.runs[:-1]
    return any(run.result.stdout.strip() or run.result.stderr.strip() or run.result.error for run in before)


def _literal_final(code: str) -> str | None:
    """The source of FINAL's argument when every FINAL/SUBMIT call in `code` passes only literals (or, without such
    calls, every value assigned to `answer["content"]` is a literal), else None."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FINAL_CALLS
    ]
    if any(call.func.id == "FINAL_VAR" for call in calls):  # type: ignore[union-attr]
        return None
    arguments = [arg for call in calls for arg in [*call.args, *(kw.value for kw in call.keywords)]]
    if not calls:
        arguments = _answer_contents(tree)
    if not arguments or not all(_is_literal(arg) for arg in arguments):
        return None
    return ast.unparse(arguments[-1])


def _answer_contents(tree: ast.AST) -> list[ast.expr]:
    """The values a block assigns to `answer["content"]`, when it also sets `answer["ready"]` (the answer dict)."""
    assigned: dict[str, list[ast.expr]] = {"content": [], "ready": []}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if (
                isinstance(target, ast.Subscript)
                and isinstance(target.value, ast.Name)
                and target.value.id == "answer"
                and isinstance(target.slice, ast.Constant)
                and target.slice.value in assigned
            ):
                assigned[target.slice.value].append(node.value)
    return assigned["content"] if assigned["ready"] else []


def _is_literal(node: ast.AST) -> bool:
    """Whether `node` is built from constants only (no names, calls or subscripts)."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return all(_is_literal(item) for item in node.elts)
    if isinstance(node, ast.Dict):
        return all(key is None or _is_literal(key) for key in node.keys) and all(map(_is_literal, node.values))
    if isinstance(node, ast.JoinedStr):
        return all(_is_literal(value) for value in node.values)
    if isinstance(node, ast.FormattedValue):
        return _is_literal(node.value)
    if isinstance(node, ast.BinOp):
        return _is_literal(node.left) and _is_literal(node.right)
    if isinstance(node, ast.UnaryOp):
        return _is_literal(node.operand)
    return False


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
