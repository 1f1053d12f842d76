"""What the root model reads about its own work: execution results and errors, worded as instructions.

This is the one formatter for text aimed at the model (not at the user): every error it sees starts with
`[Error]` and says what to do next.
"""

from __future__ import annotations

from rlm_plugins.core.ports import CodeRun

_CODE_CHARS = 1_000
"""The code is already in the model's own message; its echo above the output stays short."""
_NOTES_ROOM = 400
"""Characters kept free for the bracketed notes under an execution's output."""


def model_error(message: str) -> str:
    """An error for the model, as an instruction: `[Error] ` then the message."""
    return "[Error] " + message.strip()


def clip(text: str, max_chars: int) -> str:
    """Shorten `text` to at most `max_chars`, keeping its head and tail around a marker saying how much was cut."""
    return _clip(text, max_chars)[0]


def _clip(text: str, max_chars: int) -> tuple[str, int]:
    if len(text) <= max_chars:
        return text, 0
    if max_chars <= 0:
        return "", len(text)
    keep = max_chars - len(_marker(len(text)))
    if keep < 20:
        return text[:max_chars], len(text) - max_chars
    head = keep * 2 // 3
    tail = keep - head
    cut = len(text) - head - tail
    return text[:head] + _marker(cut) + text[len(text) - tail :], cut


def _marker(cut: int) -> str:
    return f"\n[... {cut:,} characters cut ...]\n"


def format_exec_result(run: CodeRun, max_chars: int) -> str:
    """The code of one block and what running it gave, in at most `max_chars` characters.

    Output past the budget is cut in the middle (head and tail stay) and a note says how much is gone, counting
    what the sandbox already cut. Notes also flag a timeout, a block that printed nothing, and a FINAL.
    """
    result = run.result
    code = _clip(run.code.strip(), min(_CODE_CHARS, max_chars // 5))[0]
    parts = [f"```repl\n{code}\n```"]
    sections: list[tuple[str, str, int]] = []
    room = max(max_chars - len(parts[0]) - _NOTES_ROOM, 0)
    if result.error is not None:
        sections.append((_error_header(run), str(result.error).rstrip(), room // 3))
    if result.stderr:
        sections.append(("Stderr:", result.stderr.rstrip("\n"), room // 4))
    if result.stdout:
        used = sum(min(len(text), cap) + len(header) + 2 for header, text, cap in sections)
        sections.insert(0, ("Output:", result.stdout.rstrip("\n"), room - used))
    cut = result.stdout_cut + result.stderr_cut
    for header, text, cap in sections:
        shown, lost = _clip(text, cap)
        cut += lost
        parts.append(f"{header}\n{shown}")
    parts.extend(_notes(run, cut))
    return clip("\n".join(parts), max_chars)


def _error_header(run: CodeRun) -> str:
    error = run.result.error
    if error is not None and error.is_syntax_error:
        return model_error("This block has a syntax error, so none of it ran. Fix it and run it again:")
    return model_error(
        "This block raised an exception. The statements before it ran and their variables are kept; "
        "fix the cause and continue from there:"
    )


def _notes(run: CodeRun, cut: int) -> list[str]:
    result = run.result
    notes = []
    if cut:
        notes.append(
            f"[output truncated: {cut:,} characters cut — print less: aggregate in code, "
            "or pass the pieces to llm_query and print its short answers]"
        )
    if result.timed_out:
        notes.append(
            model_error(
                f"The block timed out after {result.duration:.0f}s and was stopped. Do less per block: "
                "process fewer chunks at once, or use llm_query_batched to run sub-calls concurrently."
            )
        )
    if result.cancelled:
        notes.append(model_error("The block was cancelled before it finished; run what you still need again."))
    if result.ok and result.final is None and not result.stdout and not result.stderr:
        notes.append("[the code printed nothing — print what you need to see]")
    if result.final is not None:
        value = result.final.fields if result.final.fields is not None else result.final.value
        shown = repr(value[:400]) if isinstance(value, str) else repr(value)
        notes.append(f"[FINAL reached: {_clip(shown, 300)[0]}]")
    return notes
