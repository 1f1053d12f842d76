"""Reading a root model's reply: its reasoning, the Python blocks to run, and a plain-text FINAL when no code ran.

The final answer is normally a function call executed in the REPL. A `FINAL(...)` written in prose is accepted
only when the reply has no code: models often invent "REPL output" after a code block and then answer from it.
"""

from __future__ import annotations

import ast
import itertools
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

from rlm_plugins.core.feedback import model_error
from rlm_plugins.core.reply_checks import (
    PYTHON_LANGS,
    echo_note,
    parses,
    signature_name,
    signature_note,
    text_final_note,
)

DISPLAY_LANGS = frozenset({"", "text", "txt", "plain", "plaintext", "output", "stdout", "md", "markdown", "log"})
"""Fence languages used to show text, which earn no "only Python runs" note."""

_OPEN = re.compile(r"^[ \t]*(`{3,}|~{3,})(.*)$")
_ONE_LINER = re.compile(r"^[ \t]*([A-Za-z0-9_+.#-]*)[ \t]+(.*?)`{3,}[ \t]*$")
_LANG = re.compile(r"[A-Za-z0-9_+#-]*")
_FINAL = re.compile(r"(?<![\w.])(FINAL_VAR|FINAL)[ \t]*\(")
_LINE_START = re.compile(r"[ \t*_>`#-]*")
_LINE_END = re.compile(r"[ \t*_`.!]*(?:\n|$)")
_MAX_CLOSE_CANDIDATES = 8
_MAX_LOOKAHEAD_CHARS = 200_000
_MAX_FINAL_TRIES = 20


@dataclass(frozen=True)
class FinalVar:
    """A `FINAL_VAR(name)` written in prose: the engine answers with the REPL variable `name`."""

    name: str


@dataclass
class ParsedReply:
    """What a reply says: reasoning, code blocks to run in order, a prose FINAL, and notes for the model."""

    reasoning: str = ""
    code: list[str] = field(default_factory=list)
    final: Any = None
    has_final: bool = False
    notes: list[str] = field(default_factory=list)
    cleaned: str = ""
    """The reply cut after its last code block: what the history keeps of it."""


@dataclass
class _Fence:
    lang: str
    body: str
    start: int
    end: int
    unclosed: str = ""
    """The fence that would close the block, when the reply ended inside it."""


def parse_reply(text: str | None, instructions: str = "") -> ParsedReply:
    """Split a model reply into reasoning, Python blocks and a prose FINAL; never raises.

    A block that is only a function signature copied from the instructions is not run (a note says how to call
    it); prose that writes `Final(answer): ...`, or repeats lines of `instructions`, earns a note too.

    Examples:
        >>> parse_reply("Look first.\\n```repl\\nprint(len(context))\\n```").code
        ['print(len(context))']
        >>> parse_reply("FINAL(42)").final
        42
    """
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text.replace("\r\n", "\n")
    if not text.strip():
        return ParsedReply(
            notes=[model_error("Your reply was empty. Write Python in a ```repl block, or answer with FINAL(...).")]
        )
    fences = _scan_fences(text)
    blocks = [f for f in fences if f.lang in PYTHON_LANGS and f.body.strip()]
    if not blocks:
        blocks = [f for f in fences if not f.lang and _looks_like_code(f.body)]
    prose = _without(text, blocks)
    copied = [name for f in blocks if (name := signature_name(_dedent(f.body)))]
    blocks = [f for f in blocks if signature_name(_dedent(f.body)) is None]
    reply = ParsedReply(code=[_dedent(f.body) for f in blocks])
    reply.notes.extend(_foreign_fence_notes(fences))
    reply.notes.extend(signature_note(name) for name in dict.fromkeys(copied))
    final = _find_final(prose)
    if final is None:
        reply.notes.extend(note for note in [text_final_note(prose)] if note)
    echoed = echo_note(text, instructions)
    reply.notes.extend([echoed] if echoed else [])
    if blocks:
        last = blocks[-1]
        reply.reasoning = text[: blocks[0].start].strip()
        reply.cleaned = text[: last.end].rstrip() + (f"\n{last.unclosed}" if last.unclosed else "")
        if final is not None and final[1] >= blocks[0].start:
            reply.notes.append(
                model_error(
                    "The FINAL(...) you wrote outside code was ignored, because this reply also ran code and you "
                    "had not seen its real output yet. Read the output below, then call FINAL(...) inside a "
                    "```repl block."
                )
            )
        return reply
    reply.reasoning = reply.cleaned = text.strip()
    if final is not None:
        reply.final, reply.has_final = final[0], True
    elif not copied and not echoed:
        reply.notes.append(
            model_error(
                "Your reply had no ```repl block, so nothing ran. Write the next step as Python in a ```repl "
                "block, or end with FINAL(answer) once you know the answer."
            )
        )
    return reply


def _scan_fences(text: str) -> list[_Fence]:
    """Every fenced block of `text`, in order; an unclosed fence runs to the end."""
    lines = text.splitlines(keepends=True)
    starts = list(itertools.accumulate((len(line) for line in lines), initial=0))
    fences: list[_Fence] = []
    i = 0
    while i < len(lines):
        match = _OPEN.match(_content(lines[i]))
        if match is None:
            i += 1
            continue
        marker, info = match.group(1), match.group(2)
        if marker[0] == "`" and "`" in info:
            one = _ONE_LINER.match(info)
            if one is not None and one.group(1).lower() in PYTHON_LANGS and one.group(2).strip():
                fences.append(_Fence(one.group(1).lower(), one.group(2), starts[i], starts[i + 1]))
            i += 1
            continue
        lang = _lang(info)
        close = _find_close(lines, i, marker, lang)
        if close is None:
            fences.append(_Fence(lang, "".join(lines[i + 1 :]), starts[i], len(text), marker))
            break
        j, tail = close
        fences.append(_Fence(lang, "".join(lines[i + 1 : j]) + tail, starts[i], starts[j + 1]))
        i = j + 1
    return fences


def _find_close(lines: list[str], i: int, marker: str, lang: str) -> tuple[int, str] | None:
    """The closing line of the fence opened on line `i`, and any code written before the fence on that line.

    A Python block may hold fence lines inside a string (a prompt asking a sub-model for ```json): when the body
    up to the first candidate does not parse, a later candidate whose body does parse wins.
    """
    closing = re.compile(rf"^[ \t]*{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
    first: tuple[int, str] | None = None
    seen = 0
    for j in range(i + 1, len(lines)):
        content = _content(lines[j])
        if closing.match(content):
            candidate = (j, "")
        elif marker[0] == "`" and content.rstrip().endswith(marker) and not _OPEN.match(content):
            candidate = (j, content.rstrip().rstrip("`"))
        else:
            continue
        if lang not in PYTHON_LANGS:
            return candidate
        body = "".join(lines[i + 1 : j]) + candidate[1]
        if parses(_dedent(body)):
            return candidate
        first = first or candidate
        seen += 1
        if seen >= _MAX_CLOSE_CANDIDATES or len(body) > _MAX_LOOKAHEAD_CHARS:
            break
    return first


def _content(line: str) -> str:
    parts = line.splitlines()
    return parts[0] if parts else ""


def _lang(info: str) -> str:
    words = info.split()
    return _LANG.match(words[0].lstrip("{.")).group(0).lower() if words else ""


def _dedent(body: str) -> str:
    return textwrap.dedent(body).strip("\n").rstrip()


def _looks_like_code(body: str) -> bool:
    """Whether an unlabelled fence holds Python rather than shown data (a number, a word, a literal)."""
    code = _dedent(body)
    if not code or not parses(code):
        return False
    tree = ast.parse(code)
    if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr):
        value = tree.body[0].value
        if isinstance(value, (ast.Constant, ast.Name)):
            return False
        try:
            ast.literal_eval(value)
        except Exception:
            return True
        return False
    return True


def _foreign_fence_notes(fences: list[_Fence]) -> list[str]:
    langs = dict.fromkeys(f.lang for f in fences if f.lang not in PYTHON_LANGS and f.lang not in DISPLAY_LANGS)
    return [
        model_error(
            f"Only Python runs in the REPL: your ```{lang} block was not run. Write it as Python in a ```repl block."
        )
        for lang in langs
    ]


def _without(text: str, blocks: list[_Fence]) -> str:
    """`text` with the code blocks blanked out (same length, so offsets still match)."""
    out = list(text)
    for block in blocks:
        out[block.start : block.end] = " " * (block.end - block.start)
    return "".join(out)


def _find_final(prose: str) -> tuple[Any, int] | None:
    """The last FINAL(...) / FINAL_VAR(...) of the prose that starts or ends its line, and its offset.

    Only the last few occurrences are tried, so a reply full of unbalanced `FINAL(` stays linear to read.
    """
    matches = list(_FINAL.finditer(prose))
    for match in reversed(matches[-_MAX_FINAL_TRIES:]):
        span = _call_argument(prose, match.end() - 1)
        at_start = _LINE_START.fullmatch(prose, prose.rfind("\n", 0, match.start()) + 1, match.start()) is not None
        if span is None:
            if not at_start:
                continue
            line_end = prose.find("\n", match.end())
            argument = prose[match.end() : len(prose) if line_end < 0 else line_end].rstrip().removesuffix(")")
        else:
            argument, close = span
            if not at_start and _LINE_END.match(prose, close + 1) is None:
                continue
        value = FinalVar(_unquote(argument.strip())) if match.group(1) == "FINAL_VAR" else _literal(argument)
        return value, match.start()
    return None


def _call_argument(text: str, open_at: int) -> tuple[str, int] | None:
    """The text inside the parenthesis opened at `open_at` and the index of its closing one, or None."""
    close = _matching_paren(text, open_at, quotes=True)
    if close is None:
        close = _matching_paren(text, open_at, quotes=False)
    return None if close is None else (text[open_at + 1 : close], close)


def _matching_paren(text: str, open_at: int, *, quotes: bool) -> int | None:
    depth, i, quote = 0, open_at, ""
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            if text.startswith(quote, i):
                i += len(quote)
                quote = ""
                continue
            if char == "\n" and len(quote) == 1:
                quote = ""
        elif quotes and char in "\"'":
            quote = char * 3 if text.startswith(char * 3, i) else char
            i += len(quote)
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _literal(argument: str) -> Any:
    """FINAL's argument as a Python literal when it is one, else as text without its surrounding quotes."""
    stripped = argument.strip()
    try:
        return ast.literal_eval(stripped)
    except Exception:
        return _unquote(stripped)


def _unquote(text: str) -> str:
    for quote in ('"""', "'''", '"', "'", "`"):
        if len(text) >= 2 * len(quote) and text.startswith(quote) and text.endswith(quote):
            return text[len(quote) : -len(quote)]
    return text
