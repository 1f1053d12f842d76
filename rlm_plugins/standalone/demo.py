"""The offline demo: a 1M-line haystack with one hidden number, found by a scripted root and sub-model.

The scripted models prove the machinery (real code in the real sandbox over the real context, real sub-call
fan-out), not model quality: with `--model` the same task runs on a real model instead.
"""

from __future__ import annotations

import random
import re

from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.ports import Completion

QUESTION = "Somewhere in `context` one line states the magic number. What is the magic number?"
_NEEDLE = re.compile(r"magic number is (\d+)")

_SCRIPT = [
    "Let me look at the context first.\n```repl\nlines = context.splitlines()\nprint(len(context), len(lines))\n"
    "print(lines[:3])\n```",
    "The haystack is large, so I split it into 100 chunks and ask a sub-model about each.\n```repl\n"
    "size = len(lines) // 100 + 1\n"
    "chunks = ['\\n'.join(lines[i:i + size]) for i in range(0, len(lines), size)]\n"
    "prompts = ['Reply with the magic number stated in this text, or NONE.\\n' + c for c in chunks]\n"
    "answers = llm_query_batched(prompts)\n"
    "found = [a.strip() for a in answers if a.strip() != 'NONE']\n"
    "print(len(chunks), 'chunks;', 'found:', found)\n```",
    "```repl\nFINAL(found[0] if found else 'not found')\n```",
]


def make_haystack(lines: int = 1_000_000, seed: int = 7) -> tuple[str, str]:
    """A text of `lines` filler lines with one line stating a random magic number; returns (text, number)."""
    rng = random.Random(seed)
    number = str(rng.randrange(10**6, 10**7))
    where = rng.randrange(lines)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    body = [f"line {i}: {words[i % 8]} {words[(i * 7) % 8]} filler" for i in range(lines)]
    body[where] = f"line {where}: the magic number is {number}"
    return "\n".join(body), number


class ScriptedRoot:
    """A chat-completion callable that replays the demo's three replies, in order, for each run."""

    def __init__(self) -> None:
        self.turns: dict[int, int] = {}

    def __call__(self, messages: list[dict]) -> Completion:
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        text = _SCRIPT[min(turn, len(_SCRIPT) - 1)]
        return Completion(text, None, "scripted-root")


def scripted_policy() -> ChatPolicy:
    return ChatPolicy(ScriptedRoot(), model="scripted-root")


def scripted_sub(prompt: str) -> str:
    """The scripted sub-model: reads the chunk it was given and reports the number, as a model would."""
    match = _NEEDLE.search(prompt)
    return match.group(1) if match else "NONE"
