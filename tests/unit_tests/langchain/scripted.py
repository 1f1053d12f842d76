"""Scripted inner chat models for ChatRLM tests: a rule-based root that writes real REPL code, and a sub-model.

`ScriptedRoot` reads the engine's prompt (the query, the REPL variables, the functions, the previous turns) and
answers like a minimal RLM root would: it looks at `context` when there is one, calls an external tool when the
caller bound tools, fills an output schema from sub-calls, and otherwise answers through `llm_query`. The code
runs in the real sandbox; what these models cannot show is model quality.
"""

from __future__ import annotations

import json
import re
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

_QUERY = re.compile(r"Query: (.*?)\n\nTurn \d+ of \d+", re.S)
_TOOLS = re.compile(r"The caller gave you external tools, callable in the REPL like functions: ([^(]*) \(see")
_MUST = re.compile(r"You must call `(\w+)` before")
_SCHEMA = re.compile(r"matching this JSON schema \(no extra keys\):\n(\{.*\})\s*$", re.S)
_FUNCTION = re.compile(r"^- `(\w+)\((.*?)\)[^`]*`", re.M)


def usage(prompt: str, reply: str) -> dict[str, int]:
    n_in, n_out = (len(prompt) + 3) // 4, (len(reply) + 3) // 4
    return {"input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out}


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


class _Scripted(BaseChatModel):
    """A chat model whose reply is `self.reply(messages)`, with deterministic usage and its own model name."""

    tag: str = "scripted"
    model_name_tag: str = "scripted"

    @property
    def _llm_type(self) -> str:
        return self.tag

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"tag": self.tag}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt = "\n".join(m.text for m in messages)
        reply = self.reply(messages)
        meta = {"model_name": self.model_name_tag}
        message = AIMessage(reply, usage_metadata=usage(prompt, reply), response_metadata=meta)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def reply(self, messages: list[BaseMessage]) -> str:
        raise AssertionError("subclasses give the reply")


class ScriptedSub(_Scripted):
    """Answers every prompt with a fixed, deterministic sentence that quotes the prompt's start."""

    prefix: str = "Scripted answer"
    tag: str = "scripted-sub"
    model_name_tag: str = "sub"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"prefix": self.prefix}

    def reply(self, messages: list[BaseMessage]) -> str:
        prompt = messages[-1].text
        head = " ".join(prompt.split())[:60]
        return f"{self.prefix} ({len(prompt)} chars): {head}"


class ScriptedRoot(_Scripted):
    """A rule-based root model: it plans from the prompt it is sent and replies with ```repl code."""

    name_tag: str = "scripted-root"
    tag: str = "scripted-root"
    model_name_tag: str = "root"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"name_tag": self.name_tag}

    def reply(self, messages: list[BaseMessage]) -> str:
        system, first, last = messages[0].text, messages[1].text, messages[-1].text
        match = _QUERY.search(first)
        query = match.group(1) if match else first
        turn = sum(1 for m in messages if m.type == "ai")
        if "no more code will run" in last:
            return "Best answer from what the REPL showed."
        if "The caller ran your tool calls" in last:
            return repl("FINAL('The tool said: ' + str(list(tool_results.values())[-1]))")
        tools = _TOOLS.search(query)
        if tools:
            return repl(self.tool_call(system, query, [t.strip(" `") for t in tools.group(1).split(",")]))
        schema = _SCHEMA.search(query)
        if schema:
            return repl(fill_schema(json.loads(schema.group(1)), query))
        if "- `context`:" in system and turn == 0:
            return repl("print(type(context).__name__, len(context))\nprint(repr(context)[:200])")
        question = query.split("[user")[0].strip() or "Summarise the context."
        return repl(f"answer = llm_query({question[:300]!r})\nFINAL(answer)")

    def tool_call(self, system: str, query: str, names: list[str]) -> str:
        must = _MUST.search(query)
        name = must.group(1) if must else next((n for n in names if n in query), names[0])
        params = dict(_FUNCTION.findall(system)).get(name, "")
        args = []
        numbers = [int(n) for n in re.findall(r"\b\d+\b", query.split("The caller gave you")[0])]
        for param in filter(None, (p.strip() for p in params.split(","))):
            pname, _, ptype = param.partition(":")
            pname, ptype = pname.strip().split("=")[0], ptype.split("=")[0].strip()
            if ptype in ("int", "float"):
                args.append(f"{pname}={numbers.pop(0) if numbers else 1}")
            elif pname != "kwargs":
                args.append(f"{pname}={_phrase(query)!r}")
        return f"{name}({', '.join(args)})"


def _phrase(query: str) -> str:
    head = query.split("The caller gave you")[0].strip()
    found = re.search(r"\bin ([^?.!]+)", head)
    return found.group(1).strip() if found else (head[:40] or "pirate")


def fill_schema(schema: dict[str, Any], query: str) -> str:
    """Code that fills each schema property from a batched sub-call and ends with FINAL(dict)."""
    props = schema.get("properties") or {}
    names = list(props)
    question = query.split("\n\nEnd the run with FINAL")[0][:200]
    lines = [
        f"names = {names!r}",
        f"answers = llm_query_batched([{question!r} + ' -- give the ' + n for n in names])",
        "out = dict(zip(names, answers))",
    ]
    for name, spec in props.items():
        kind = spec.get("type") or next((t.get("type") for t in spec.get("anyOf", []) if t.get("type") != "null"), None)
        if kind in ("integer", "number"):
            lines.append(f"out[{name!r}] = len(out[{name!r}])")
        elif kind == "boolean":
            lines.append(f"out[{name!r}] = True")
    lines.append("FINAL(out)")
    return "\n".join(lines)
