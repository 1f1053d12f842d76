"""The conversation as the root prompt shows it: recent exchanges in full, older ones compacted to one line, the
oldest only counted, always within a fixed number of characters.

Every exchange stays complete in the REPL (`history_<k>` holds turn k's messages), so the prompt only needs
enough to follow the conversation; the model reads the rest in code.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlm_plugins.core.feedback import clip

HEADER = "The conversation so far, oldest first (you are the assistant):"
OMITTED = (
    "- (turns {first} to {last} are left out of this prompt; their messages and answers are in `history_{first}` "
    "... `history_{last}` in the REPL)"
)
_ONE_LINE = 90
_OMITTED_ROOM = 200


@dataclass
class Exchange:
    """One finished turn: the user's message (or what the prompt said of it) and the answer."""

    turn: int
    message: str
    answer: str


class Memory:
    """What the agent remembers of a conversation for its root prompts.

    Args:
        max_chars: the most characters the rendered conversation takes in a root prompt.
        keep_recent: how many of the latest exchanges are shown in full (each clipped to a fair share).
    """

    def __init__(self, max_chars: int = 6_000, keep_recent: int = 3) -> None:
        self.max_chars = max_chars
        self.keep_recent = keep_recent
        self.exchanges: list[Exchange] = []

    def add(self, turn: int, message: str, answer: str) -> None:
        """Remember a finished turn."""
        self.exchanges.append(Exchange(turn, message, answer))

    def render(self) -> str:
        """The conversation for the next root prompt, at most `max_chars` characters ("" before the first turn)."""
        if not self.exchanges:
            return ""
        room = self.max_chars - len(HEADER) - 1 - _OMITTED_ROOM
        share = max(room * 3 // 5 // (2 * max(self.keep_recent, 1)) - 20, 40)  # the rest is for one-liners
        lines: list[str] = []
        kept = 0
        for rank, exchange in enumerate(reversed(self.exchanges)):
            line = _full(exchange, share) if rank < self.keep_recent else _compact(exchange)
            if len(line) + 1 > room:
                break
            room -= len(line) + 1
            lines.append(line)
            kept += 1
        left_out = self.exchanges[: len(self.exchanges) - kept]
        body = [HEADER]
        if left_out:
            body.append(OMITTED.format(first=left_out[0].turn, last=left_out[-1].turn))
        return "\n".join([*body, *reversed(lines)])

    def to_list(self) -> list[dict[str, object]]:
        """The exchanges as plain data (for `save`)."""
        return [{"turn": e.turn, "message": e.message, "answer": e.answer} for e in self.exchanges]

    def extend(self, data: list[dict[str, object]]) -> None:
        """Remember saved exchanges (from `to_list`)."""
        self.exchanges.extend(Exchange(int(d["turn"]), str(d["message"]), str(d["answer"])) for d in data)  # type: ignore[call-overload]


def _full(exchange: Exchange, share: int) -> str:
    return f"- turn {exchange.turn}, user: {clip(exchange.message, share)}\n  you: {clip(exchange.answer, share)}"


def _compact(exchange: Exchange) -> str:
    message = " ".join(exchange.message.split())[:_ONE_LINE]
    answer = " ".join(exchange.answer.split())[:_ONE_LINE]
    return f"- turn {exchange.turn}, user: {message} -> you: {answer}"
