"""The scripted upstream models behind the server under test: root replies by scenario tag and turn, sub replies.

A request's last user message names its scenario in brackets ("[tools] What is the weather?"); the root model's
reply for turn n (counted by the assistant messages in its prompt) is `SCRIPTS[scenario][n]`. Sub-calls (one user
message, no system prompt) answer "hello from sub".
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

SUB_REPLY = "hello from sub"


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


SCRIPTS: dict[str, list[str]] = {
    "plain": [repl("word = llm_query('Say hello')\nprint(word)"), repl("FINAL(word + '!')")],
    "long": [repl("print(len(context))"), repl("FINAL(str(context.count('needle')))")],
    "tools": [
        repl("note = 'kept across pauses'\nget_weather(city='Paris')"),
        repl("print(tool_results)\nget_time(zone='CET')"),
        repl("FINAL(note + ': ' + ' & '.join(str(v) for v in tool_results.values()))"),
    ],
    "two": [
        repl(
            "for c in ('Paris', 'Rome'):\n"
            "    try:\n        get_weather(city=c)\n    except Exception as exc:\n        print(exc)"
        ),
        repl("FINAL(' & '.join(sorted(str(v) for v in tool_results.values())))"),
    ],
    "json": [
        repl("print('looking')"),
        repl("FINAL({'town': 'Paris'})"),
        repl("FINAL({'city': 'Paris', 'temp': 21})"),
    ],
    "slow": [repl("import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(120)"), repl("FINAL('late')")],
    "broken": [],
    "delayed": [repl("print('slowly')"), repl("FINAL('done in time')")],
    "agent": [
        repl("get_weather(city='Paris')"),
        repl("FINAL('It is ' + str(list(tool_results.values())[-1]))"),
    ],
}


def scenario(request: dict[str, Any]) -> str:
    text = json.dumps(request["messages"])
    for name in SCRIPTS:
        if f"[{name}]" in text:
            return name
    return "plain"


def script(request: dict[str, Any]) -> str:
    """The scripted upstream: root replies by scenario and turn, sub replies a constant."""
    messages = request["messages"]
    if messages[0]["role"] != "system":
        return SUB_REPLY
    if "no more code will run" in str(messages[-1].get("content")):
        return "extracted"
    name = scenario(request)
    if name == "broken":
        return {"status": 500, "message": "the upstream model is down"}
    replies = SCRIPTS[name]
    turn = sum(1 for m in messages if m["role"] == "assistant")
    reply = replies[min(turn, len(replies) - 1)]
    return {"content": reply, "delay": 2.0} if name == "delayed" and turn == 0 else reply


def descendants(pid: int | None = None) -> set[int]:
    """Every live process below `pid` (default: this one), from /proc."""
    pid = os.getpid() if pid is None else pid
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def wait_for(predicate, polls: int = 1200) -> None:
    """Poll `predicate` every 50 ms, at most `polls` times (a minute), and assert it came true: an outcome, not
    a time bound."""
    for _ in range(polls):
        if predicate():
            return
        await asyncio.sleep(0.05)
    assert predicate(), "condition not reached"
