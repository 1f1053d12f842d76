"""A multi-turn DSPy chat over one REPL: `dspy.History` plus `RLM(persistent=True)`.

Turn 1 parses a sales log into a variable in the REPL; later turns reuse that variable instead of reading the log
again, and the conversation itself is in the REPL as `history` (a list of the earlier turns), never pasted whole
into the root prompt. A second conversation, and every example of a `dspy.Evaluate` run, starts in a fresh REPL.

Offline (the default) the root model is scripted, so the run is deterministic and needs no key: each turn's code
is what a model would write for that question. It shows the mechanics, not model quality. With a real model (any
LiteLLM model id; its key in the usual environment variable):

    python examples/dspy_history_chat.py --model openai/gpt-4o-mini

Run offline:

    python examples/dspy_history_chat.py
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

import dspy
from dspy.clients.engines.dummy_engine import AsyncDummyEngine, DummyEngine
from dspy.lm15 import Message, Response, TextPart, Usage
from dspy.utils.dummies import DummyLM

from rlm_plugins.dspy import RLM

SIGNATURE = "log, question, history: dspy.History -> answer"
LOG = "\n".join(
    f"2026-01-{day:02d} {region} {amount}"
    for day, region, amount in [
        (1, "north", 120),
        (2, "south", 80),
        (3, "north", 45),
        (4, "east", 100),
        (5, "south", 20),
        (6, "north", 5),
    ]
)
QUESTIONS = [
    "Parse the log into a list of (day, region, amount).",
    "Which region sold the most?",
    "How much did that region sell on its best day?",
    "How many turns have we had so far?",
]

CODE = {
    "Parse": "sales = [(d, r, int(a)) for d, r, a in (line.split() for line in log.splitlines())]\n"
    "SUBMIT(answer=f'{len(sales)} sales parsed')",
    "Which region": "totals = {}\nfor _, region, amount in sales:\n"
    "    totals[region] = totals.get(region, 0) + amount\n"
    "best = max(totals, key=totals.get)\nSUBMIT(answer=f'{best} ({totals[best]})')",
    "best day": "SUBMIT(answer=str(max(a for _, r, a in sales if r == best)))",
    "How many turns": "SUBMIT(answer=f'{len(history) + 1} turns')",
}


class _ScriptEngine(DummyEngine):
    def _complete_messages(self, messages: list[dict[str, Any]]) -> Response:
        text = self.owner._format_answer_fields(self.owner.reply(messages))
        return Response(
            id=None, model="scripted", message=Message.assistant([TextPart(text)]), finish_reason="stop", usage=Usage()
        )


class ScriptedRoot(DummyLM):
    """A DummyLM that writes, for each question, the code a model would write."""

    def __init__(self) -> None:
        super().__init__([])
        self.model = "scripted-root"
        self._engine_spec = _ScriptEngine(self)
        self._async_engine_spec = AsyncDummyEngine(self._engine_spec)

    def reply(self, messages: list[dict[str, Any]]) -> dict[str, str]:
        if "extract the final outputs" in messages[0]["content"]:
            return {"answer": "unknown"}
        question = re.search(r"Variable: `question`.*?```\s*\n\s*(.*?)\n", messages[-1]["content"], re.S)
        asked = question.group(1) if question else ""
        code = next((code for marker, code in CODE.items() if marker in asked), "SUBMIT(answer='?')")
        return {"reasoning": f"Answer in code: {asked}", "code": code}


def converse(rlm: RLM, questions: list[str]) -> list[str]:
    """One conversation: each turn appended to the history, as a DSPy chat loop does."""
    history, answers = dspy.History(messages=[]), []
    for question in questions:
        pred = rlm(log=LOG, question=question, history=history)
        answers.append(pred.answer)
        history.messages.append({"log": LOG, "question": question, "answer": pred.answer})
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a LiteLLM model id; scripted offline when omitted")
    parser.add_argument("--sandbox", default="local", choices=["local", "inprocess"])
    args = parser.parse_args()
    lm = dspy.LM(args.model) if args.model else ScriptedRoot()
    rlm = RLM(SIGNATURE, sandbox=args.sandbox, sub_lm=lm, persistent=True, max_iters=3)
    with dspy.context(lm=lm):
        chat = converse(rlm, QUESTIONS)
        fresh = converse(rlm, QUESTIONS[1:2])
    rlm.close()
    report = {"answers": chat, "fresh_conversation": fresh}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
