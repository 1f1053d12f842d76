"""An assistant over a large log with `RLMAgent`: a tool, a context, a streamed turn, and save/load.

    python examples/agent_chat.py --model openai/gpt-5-mini          # a real model (needs OPENAI_API_KEY)
    python examples/agent_chat.py --offline --sandbox local           # a scripted root model: shows the plumbing

The log (about 2 MB) never enters a prompt: the agent holds it in its REPL as `log`. Turn 1 counts the errors per
service and keeps the table in a variable; turn 2 (streamed: step, code, output, answer chunks, done) asks a tool
for the on-call person of the worst service; then the conversation is saved, loaded into a new agent, and turn 3
reads the turn-1 table that came back with it. Offline, a scripted root model writes the code a real one would;
it shows the plumbing, not model quality.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from rlm_plugins import RLMAgent
from rlm_plugins.agent import AnswerChunk, Code, Done, Output, StepStarted

SERVICES = ["auth", "billing", "search", "mail"]
ON_CALL = {"auth": "Ana", "billing": "Bo", "search": "Chen", "mail": "Dee"}


def sample_log() -> str:
    lines = []
    for i in range(40_000):
        service = SERVICES[(i * 7) % 4 if i % 5 else 1]
        level = "ERROR" if i % 3 == 0 else "INFO"
        lines.append(f"2025-03-{1 + i % 28:02d} {level} {service}: request {i} took {(i * 37) % 900} ms")
    return "\n".join(lines)


def on_call(service: str) -> str:
    """Who is on call for a service this week.

    Args:
        service: the service name, as it appears in the log.
    """
    return ON_CALL.get(service, "nobody")


async def page(person: str, text: str) -> str:
    """Send a page to a person; returns the delivery receipt."""
    await asyncio.sleep(0)
    return f"paged {person}: {text[:40]}"


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


OFFLINE = {
    "errors": [
        repl(
            "errors = {}\nfor line in log.splitlines():\n    if ' ERROR ' in line:\n"
            "        service = line.split()[2].rstrip(':')\n        errors[service] = errors.get(service, 0) + 1\n"
            "print(errors)"
        ),
        repl("worst = max(errors, key=errors.get)\nFINAL(f'{worst} has the most errors ({errors[worst]:,})')"),
    ],
    "on call": [
        repl("person = on_call(worst)\nreceipt = page(person, f'{worst}: {errors[worst]} errors')\nprint(receipt)"),
        repl("FINAL(f'{person} is on call for {worst}; {receipt}')"),
    ],
    "table": [repl("FINAL(', '.join(f'{s}: {n:,}' for s, n in sorted(errors.items())))")],
}


def offline_root(messages: list[dict[str, Any]]) -> str:
    """A scripted root model: picks its script by a phrase of the user's new message, then goes step by step."""
    question = next(m["content"] for m in messages if m["role"] == "user")
    new = question.rsplit("The user's new message", 1)[-1]
    script = next(lines for phrase, lines in OFFLINE.items() if re.search(phrase, new, re.I))
    step = sum(1 for m in messages if m["role"] == "assistant")
    return script[min(step, len(script) - 1)]


def describe(event: Any) -> str:
    if isinstance(event, StepStarted):
        return f"step {event.iteration}"
    if isinstance(event, Code):
        return "code: " + event.code.splitlines()[0]
    if isinstance(event, Output):
        return "output: " + (event.error or event.stdout).strip()[:80]
    if isinstance(event, AnswerChunk):
        return f"chunk: {event.text!r}"
    if isinstance(event, Done):
        return f"done: {event.finish_reason}, {event.total_usage.calls} model calls"
    return type(event).__name__


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="openai/gpt-5-mini")
    parser.add_argument("--sub-model", default=None)
    parser.add_argument("--sandbox", default="local")
    parser.add_argument("--offline", action="store_true")
    args = parser.parse_args()
    if args.offline:
        models: dict[str, Any] = {"model": offline_root, "sub_model": lambda prompt: ""}
    else:
        models = {"model": args.model, "sub_model": args.sub_model}
    agent = RLMAgent(**models, sandbox=args.sandbox, instructions="You are the on-call assistant of an ops team.")
    agent.register_tool("on_call", on_call)
    agent.register_tool("page", page)
    agent.add_context("log", sample_log())
    report: dict[str, Any] = {"answers": []}
    with agent:
        report["answers"].append(agent.chat("Which service logged the most errors?"))
        events = list(agent.chat("Who is on call for it? Page them.", stream=True))
        for event in events:
            print(describe(event))
        report["events"] = [type(event).__name__ for event in events]
        report["answers"].append(events[-1].answer)
        path = Path(tempfile.mkdtemp()) / "agent.zip"
        saved = agent.save(path)
        report["saved"], report["not_saved"] = sorted(saved.saved), saved.skipped
    restored = RLMAgent.load(path, **models, sandbox=args.sandbox)
    with restored:
        report["answers"].append(restored.chat("Show me the error table again."))
        report["turns"] = restored.turns
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
