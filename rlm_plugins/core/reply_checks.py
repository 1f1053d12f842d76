"""Messy replies real (small) models write, and the notes that tell them what to do instead.

Each check is a pure function of the reply text: a function signature from the instructions written as code
(`llm_query(prompt: str) -> str`), an answer written as `Final(answer): ...` in prose, a reply that echoes the
instructions back, and, for the extract step, an "answer" that is only a code fence.
"""

from __future__ import annotations

import ast
import re

from rlm_plugins.core.feedback import model_error

PYTHON_LANGS = frozenset({"repl", "python", "py", "python3", "py3", "ipython"})
"""Fence languages whose blocks run in the REPL."""

_SIGNATURE = re.compile(r"^\s*(?:def\s+)?([A-Za-z_]\w*)\s*\((.*)\)\s*->\s*[^\s=].*?:?\s*$")
_TEXT_FINAL = re.compile(r"(?im)^[\s*_>#`-]*(final(?:[ _]answer)?)\s*(?:\(\s*[\w ]*\s*\))?\s*:\s*\S")
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n(.*?)^[ \t]*\1[ \t]*$\n?", re.M | re.S)
_OPEN_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n?", re.M)
_PRINTED = re.compile(r"^\s*(?:FINAL|print)\s*\((.*)\)\s*$", re.S)
_ECHO_MIN_CHARS = 25
_ECHO_MIN_LINES = 3

EXTRACT_RETRY = (
    "Your reply was code, but no code runs any more. Reply with the answer itself as plain text: no code block, "
    "no FINAL(...), no preamble."
)


def signature_name(code: str) -> str | None:
    """The function name when `code` is a signature copied from the instructions rather than runnable Python."""
    lines = [line for line in code.splitlines() if line.strip()]
    if not lines or parses(code):
        return None
    names = [match.group(1) for line in lines if (match := _SIGNATURE.match(line))]
    return names[0] if names else None


def signature_note(name: str) -> str:
    """The note for a block that was a copied signature, saying how to call the function instead."""
    return model_error(
        f"`{name}(...) -> ...` is the signature from the instructions, not code, so nothing ran. Call the function "
        f'in a ```repl block instead, e.g. `answer = {name}(f"Question... Text: {{context[:2000]}}")`, then print '
        "what you need to see."
    )


def text_final_note(text: str) -> str | None:
    """A note when the prose writes an answer as `Final(answer): ...` / `Final answer: ...` instead of FINAL(...)."""
    match = _TEXT_FINAL.search(text)
    if match is None:
        return None
    return model_error(
        f"`{match.group(1)}: ...` written as text is not an answer and did not end the run. When the output you "
        "have seen supports an answer, call FINAL(value) (upper case, a function call) inside a ```repl block."
    )


def echo_note(text: str, instructions: str) -> str | None:
    """A note when the reply's prose repeats several lines of the instructions instead of taking a step."""
    if not instructions:
        return None
    known = {  # indented lines are previews of the data, which a reply may well quote
        _norm(line)
        for line in instructions.splitlines()
        if len(line.strip()) >= _ECHO_MIN_CHARS and not line[:1].isspace()
    }
    prose = _FENCE.sub("", text)
    copied = [line for line in prose.splitlines() if len(line.strip()) >= _ECHO_MIN_CHARS and _norm(line) in known]
    if len(copied) < _ECHO_MIN_LINES:
        return None
    return model_error(
        f"Your reply repeated {len(copied)} lines of the instructions instead of taking a step. Do not restate "
        "them: write the next step as Python in a ```repl block (start by looking at the data)."
    )


def answer_text(text: str) -> str:
    """What an extract reply answers, never a raw code fence: the prose around code blocks, else the body of a
    data block (```json), else what the code would have answered (`FINAL(x)` / `print(x)` with a literal x),
    else ""."""
    prose = _OPEN_FENCE.sub("", _FENCE.sub("\n", text)).strip()
    if prose:
        return prose
    fences = [(match.group(2).strip(), _is_code(match.group(0), match.group(2))) for match in _FENCE.finditer(text)]
    for body, code in fences:
        if not code and body:
            return body
    for body, _ in fences:
        for line in reversed(body.splitlines()):
            value = _literal_call(line)
            if value is not None:
                return value
    return ""


def is_code_only(text: str) -> bool:
    """Whether a reply is only Python code fences (no prose, no data block) and so answers nothing by itself."""
    fences = list(_FENCE.finditer(text))
    if _OPEN_FENCE.sub("", _FENCE.sub("\n", text)).strip():
        return False
    if not fences:
        return bool(_OPEN_FENCE.search(text))
    return all(_is_code(match.group(0), match.group(2)) for match in fences)


def _is_code(fence: str, body: str) -> bool:
    """Whether a fenced block is Python to run rather than data to read (```json, a bare literal)."""
    lang = fence.lstrip(" \t`~").split("\n", 1)[0].strip().lower()
    if lang:
        return lang in PYTHON_LANGS
    try:
        ast.literal_eval(body.strip())
    except Exception:
        return True
    return False


def _literal_call(line: str) -> str | None:
    match = _PRINTED.match(line)
    if match is None:
        return None
    try:
        value = ast.literal_eval(match.group(1).strip())
    except Exception:
        return None
    return value if isinstance(value, str) else repr(value)


def _norm(line: str) -> str:
    return " ".join(line.strip().strip("-*#> ").split()).lower()


def parses(code: str) -> bool:
    """Whether `code` is valid Python."""
    try:
        ast.parse(code)
    except Exception:
        return False
    return True
