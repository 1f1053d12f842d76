"""The code of a `generate_action` answer: the first Python fenced block, or the whole text when it has no fence."""

from __future__ import annotations

import re

PYTHON_LANGS = frozenset({"", "python", "py", "python3", "py3"})
_FENCE = "```"
_BARE_PAIR = re.compile(r"\A```[ \t]*\n(.*)\n[ \t]*```\Z", re.DOTALL)


def strip_code_fences(text: str) -> str:
    """The code in `text`; a block fenced as another language is a `SyntaxError` the model is told about."""
    code = text.strip()
    while _FENCE in code:
        bare = _BARE_PAIR.match(code)
        if bare is None:
            break
        code = bare.group(1).strip()
    start = code.find(_FENCE)
    if start < 0:
        return code
    header, newline, body = code[start + len(_FENCE) :].partition("\n")
    if not newline:
        return code
    words = header.split()
    lang = words[0].lower() if words else ""
    if lang not in PYTHON_LANGS:
        raise SyntaxError(f"Expected Python code but got ```{lang} fence. Write Python code, not {lang}.")
    end = body.find(_FENCE)
    return (body if end < 0 else body[:end]).strip()
