"""`ChatPolicy`: the root model as any chat-completion callable over OpenAI-format messages.

The messages carry the system prompt, the history of previous turns (each reply cut after its last code block,
then the real REPL output and the prompt of the turn that followed) and the current turn's prompt, last. The long
input never enters them: the model reads only what `describe_value` says about it. Each request repeats the
previous one as its prefix, so provider prompt caches serve it; when the history grows past its budget, the
oldest turns are compacted in one go and the usage of that request counts the compaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from rlm_plugins._threads import in_thread
from rlm_plugins.core.feedback import clip, format_exec_result
from rlm_plugins.core.parsing import parse_reply
from rlm_plugins.core.ports import Action, CodeRun, Completion, RunState, Step, Usage, as_completion
from rlm_plugins.core.prompts import extract_prompt, system_prompt, user_prompt
from rlm_plugins.core.reply_checks import EXTRACT_RETRY, answer_text, is_code_only
from rlm_plugins.errors import ConfigurationError

Message = dict[str, str]
Complete = Callable[[list[Message]], Completion | str]
AComplete = Callable[[list[Message]], Awaitable[Completion | str]]

SYSTEM_ROLES = frozenset({"system", "developer", "user"})
COMPACTED_HEADER = (
    "Earlier turns, compacted to save space (their full output is gone, but the variables they made are still "
    "in the REPL; SHOW_VARS() lists them):"
)
CHARS_PER_TOKEN = 4
"""The rough size of a token, for budgets given in tokens (no tokenizer is needed in the core)."""
_SUMMARY_CODE_LINES = 3
_SUMMARY_CODE_CHARS = 160
_SUMMARY_OUTPUT_CHARS = 200


class ChatPolicy:
    """The root model behind any chat-completion function: it builds the messages and parses the reply.

    Every request is the previous one plus appended messages (each turn's prompt, with its turn counter, stays at
    the end of the message that carried it), so providers serve all but the new turn from their prompt cache.
    When the history outgrows its budget, the oldest turns are compacted into short summary lines, down to half
    the budget at once, so the prefix stays stable again until the next compaction.

    Args:
        complete: called with a list of `{"role", "content"}` dicts; returns the reply text or a `Completion`.
        acomplete: its async twin; when None, `aact`/`aextract` run `complete` in a worker thread.
        model: the model name reported in usage when the reply does not name one.
        max_history_chars: the size the previous turns may take in a request before older ones are compacted.
        keep_recent_steps: how many of the latest turns stay in full when the history is compacted.
        system_role: the role of the instructions message: "system", "developer", or "user" for chat templates
            without a system role (the instructions then open the first user message).
        max_history_tokens: the same budget in tokens (about 4 characters each); overrides `max_history_chars`.
        instructions: builds the system prompt from the run state; `prompts.system_prompt` by default.

    Examples:
        >>> from rlm_plugins.core.ports import RunState
        >>> policy = ChatPolicy(lambda messages: "```repl\\nprint(len(context))\\n```")
        >>> state = RunState("How long is it?", [], [], [], 1, 10)
        >>> policy.act(state).code
        ['print(len(context))']
    """

    def __init__(
        self,
        complete: Complete,
        acomplete: AComplete | None = None,
        *,
        model: str | None = None,
        max_history_chars: int = 40_000,
        keep_recent_steps: int = 4,
        system_role: str = "system",
        max_history_tokens: int | None = None,
        instructions: Callable[[RunState], str] = system_prompt,
    ) -> None:
        if not callable(complete):
            raise ConfigurationError("complete must be a function taking a list of message dicts; got a non-callable")
        if acomplete is not None and not callable(acomplete):
            raise ConfigurationError("acomplete must be an async function taking a list of message dicts, or None")
        if max_history_tokens is not None:
            if max_history_tokens < 250:
                raise ConfigurationError(f"max_history_tokens={max_history_tokens} is too small; pass 250 or more")
            max_history_chars = max_history_tokens * CHARS_PER_TOKEN
        if max_history_chars < 1_000:
            raise ConfigurationError(f"max_history_chars={max_history_chars} is too small; pass 1000 or more")
        if keep_recent_steps < 0:
            raise ConfigurationError(f"keep_recent_steps={keep_recent_steps} is negative; pass 0 or more")
        if system_role not in SYSTEM_ROLES:
            raise ConfigurationError(f"system_role={system_role!r} is not one of {sorted(SYSTEM_ROLES)}")
        self.system_role = system_role
        self.instructions = instructions
        self.complete = complete
        self.acomplete = acomplete
        self.model = model
        self.max_history_chars = max_history_chars
        self.keep_recent_steps = keep_recent_steps

    def build_messages(self, state: RunState) -> list[Message]:
        """The request for the current turn: system prompt, history, and this turn's prompt."""
        return self._messages(state, user_prompt(state))[0]

    def act(self, state: RunState) -> Action:
        """Ask the model for its next action."""
        messages, compacted = self._messages(state, user_prompt(state))
        return self._action(self.complete(messages), messages, compacted)

    async def aact(self, state: RunState) -> Action:
        """The async twin of `act`; it never blocks the event loop."""
        messages, compacted = self._messages(state, user_prompt(state))
        return self._action(await self._acall(messages), messages, compacted)

    def extract(self, state: RunState) -> Completion:
        """Ask for a final answer from the history alone, once the budget is gone; a reply that is only code is
        asked for once more, and what comes back is always text, never a code fence."""
        messages, compacted = self._messages(state, extract_prompt(state))
        first = self._completion(self.complete(messages), compacted)
        if not is_code_only(first.text):
            return _answer(first)
        return _answer(first, self._completion(self.complete(_retry(messages, first.text))))

    async def aextract(self, state: RunState) -> Completion:
        """The async twin of `extract`."""
        messages, compacted = self._messages(state, extract_prompt(state))
        first = self._completion(await self._acall(messages), compacted)
        if not is_code_only(first.text):
            return _answer(first)
        return _answer(first, self._completion(await self._acall(_retry(messages, first.text))))

    async def _acall(self, messages: list[Message]) -> Completion | str:
        if self.acomplete is None:
            return await in_thread(self.complete, messages)  # a daemon: a hung call cannot hold the host
        return await self.acomplete(messages)

    def _completion(self, reply: Completion | str | None, compacted: bool = False) -> Completion:
        completion = as_completion(reply, self.model)
        if completion.model is None and self.model is not None:
            completion = dataclasses.replace(completion, model=self.model)
        if compacted:
            usage = completion.usage.copy() if completion.usage is not None else Usage(calls=1)
            usage.compactions += 1
            completion = dataclasses.replace(completion, usage=usage)
        return completion

    def _action(self, reply: Completion | str | None, messages: list[Message], compacted: bool) -> Action:
        completion = self._completion(reply, compacted)
        parsed = parse_reply(completion.text, instructions=messages[0]["content"])
        return Action(
            reasoning=parsed.reasoning,
            code=parsed.code,
            final=parsed.final,
            has_final=parsed.has_final,
            notes=parsed.notes,
            response=completion.text,
            usage=completion.usage,
            model=completion.model,
            prompt=messages,
        )

    def _messages(self, state: RunState, prompt: str) -> tuple[list[Message], bool]:
        """System prompt, then alternating user/assistant turns; `prompt` closes the last user message.

        Returns the messages and whether this request compacted turns that the previous one still held in full.
        """
        messages = [_message(self.system_role, self.instructions(state))]
        history = state.history
        if not history:
            return _roles([*messages, _message("user", prompt)]), False
        opening = user_prompt(dataclasses.replace(state, history=[], iteration=history[0].iteration))
        turns = [(_reply_text(step), _results_text(step, state.max_output_chars)) for step in history]
        for index in range(len(turns) - 1):
            asked = dataclasses.replace(state, history=history[: index + 1], iteration=history[index + 1].iteration)
            reply, results = turns[index]
            turns[index] = (reply, f"{results}\n\n{user_prompt(asked)}")
        summary_room = self.max_history_chars // (4 if self.keep_recent_steps else 2)
        sizes = [len(reply) + len(results) for reply, results in turns]
        sizes[-1] += len(prompt) + 2  # as the next request will count this turn, so both agree on the split
        split, compacted = _split(sizes, self.keep_recent_steps, self.max_history_chars - summary_room)
        summary = _compact(history[:split], summary_room)
        recent = [text for pair in turns[split:] for text in pair]
        room = self.max_history_chars - len(summary)
        if sum(map(len, recent)) > room:
            recent = [
                clip(text, cap) for text, cap in zip(recent, _fair_caps([len(t) for t in recent], room), strict=True)
            ]
        messages.append(_message("user", f"{opening}\n\n{summary}" if summary else opening))
        for reply, results in zip(recent[::2], recent[1::2], strict=True):
            messages += [_message("assistant", reply), _message("user", results)]
        messages[-1]["content"] += "\n\n" + prompt
        return _roles(messages), compacted


def _split(sizes: list[int], keep: int, limit: int) -> tuple[int, bool]:
    """How many of the oldest turns to compact, and whether the newest turn moved that boundary.

    Turns stay in full while they fit in `limit` characters (the budget minus the summary's room); past that, the
    oldest ones are compacted until the rest fits in half of it, keeping the `keep` latest in full. The boundary
    only moves at such a compaction, so the requests in between extend each other.
    """
    split, total, moved_at = 0, 0, -1
    for count, size in enumerate(sizes, 1):
        total += size
        if total <= limit:
            continue
        before = split
        while split < count - keep and total > limit // 2:
            total -= sizes[split]
            split += 1
        if split != before:
            moved_at = count
    return split, moved_at == len(sizes)


def _message(role: str, content: str) -> Message:
    return {"role": role, "content": content}


def _roles(messages: list[Message]) -> list[Message]:
    """Without a system role, the instructions open the first user message (so they still reach the model)."""
    if messages[0]["role"] != "user":
        return messages
    instructions, first, *rest = messages
    return [_message("user", f"{instructions['content']}\n\n{first['content']}"), *rest]


def _retry(messages: list[Message], reply: str) -> list[Message]:
    return [*messages, _message("assistant", reply), _message("user", EXTRACT_RETRY)]


def _answer(*completions: Completion) -> Completion:
    """The last completion's answer as text (code fences removed), with the usage of every call summed."""
    last = completions[-1]
    if len(completions) == 1:
        return dataclasses.replace(last, text=answer_text(last.text))
    usage = Usage()
    for completion in completions:
        usage.add(completion.usage or Usage(calls=1))
    return Completion(answer_text(last.text) or answer_text(completions[0].text), usage, last.model)


def _reply_text(step: Step) -> str:
    """What the history keeps of a reply: its reasoning and code, never the output it may have invented."""
    return parse_reply(step.response).cleaned or step.reasoning.strip() or "(empty reply)"


def _results_text(step: Step, max_chars: int) -> str:
    parts = [format_exec_result(run, max_chars) for run in step.runs] + list(step.notes)
    return "\n\n".join(parts) or "(no code ran)"


def _compact(steps: list[Step], max_chars: int) -> str:
    """One short line per step (code head, output head), keeping the latest lines that fit in `max_chars`."""
    if not steps:
        return ""
    lines = [_summary_line(step) for step in steps]
    kept: list[str] = []
    size = len(COMPACTED_HEADER) + 40
    for line in reversed(lines):
        if size + len(line) + 1 > max_chars:
            break
        kept.append(line)
        size += len(line) + 1
    omitted = len(lines) - len(kept)
    body = [COMPACTED_HEADER, *([f"- ({omitted} earlier turns left out)"] if omitted else []), *reversed(kept)]
    return clip("\n".join(body), max_chars)


def _summary_line(step: Step) -> str:
    if not step.runs:
        said = " ".join(step.reasoning[:_SUMMARY_OUTPUT_CHARS].split())
        return f"- turn {step.iteration}: no code ran" + (f" ({said})" if said else "")
    code = [line.strip() for run in step.runs for line in run.code.splitlines() if line.strip()]
    shown = " | ".join(code[:_SUMMARY_CODE_LINES])[:_SUMMARY_CODE_CHARS]
    more = " | ..." if len(code) > _SUMMARY_CODE_LINES else ""
    output = " ".join(" ".join(_run_output(run).split()) for run in step.runs)[:_SUMMARY_OUTPUT_CHARS]
    return f"- turn {step.iteration}: ran `{shown}{more}` -> {output or '(no output)'}"


def _run_output(run: CodeRun) -> str:
    result = run.result
    if result.final is not None:
        return "FINAL reached"
    if result.error is not None:
        return f"{result.error.type}: {result.error.message[:_SUMMARY_OUTPUT_CHARS]}"
    return (result.stdout or result.stderr)[: _SUMMARY_OUTPUT_CHARS * 2]


def _fair_caps(lengths: list[int], budget: int) -> list[int]:
    """Split `budget` characters between texts: short ones keep everything, long ones share the rest evenly."""
    caps = [0] * len(lengths)
    left = max(budget, 0)
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    for rank, index in enumerate(order):
        caps[index] = min(lengths[index], left // (len(order) - rank))
        left -= caps[index]
    return caps
