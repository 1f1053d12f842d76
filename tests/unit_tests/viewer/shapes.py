"""Logs of each shape the viewer must show, written by the real engine and logger over scripted models."""

from __future__ import annotations

import json
from pathlib import Path

from rlm_plugins import RLM, RLMLogger
from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.ports import Completion, Usage

QUESTION = "Which fruit is mentioned most often?"
CONTEXT = "\n".join(f"line {i}: {'apple' if i % 3 else 'pear'} and filler text" for i in range(3000))


def _repl(code: str) -> str:
    return f"Let me work on it.\n```repl\n{code}\n```"


SCRIPTS = {
    "final": [
        _repl("lines = context.splitlines()\nprint(len(lines), lines[:2])"),
        _repl(
            "chunks = ['\\n'.join(lines[i:i + 300]) for i in range(0, len(lines), 300)]\n"
            "answers = llm_query_batched(['Most common fruit? ' + c for c in chunks])\nprint(answers)"
        ),
        _repl("FINAL(max(set(answers), key=answers.count))"),
    ],
    "max_iterations": [_repl("print('still looking at', len(context), 'characters')\nundefined_name")],
    "sandbox_error": [_repl("print('about to crash')"), _repl("import os\nos._exit(3)")],
    "depth2": [
        _repl("half = len(context) // 2\nfirst = rlm_query('Most common fruit here?', context[:half])\nprint(first)"),
        _repl("FINAL(first)"),
    ],
}
CHILD = [_repl("n = context.count('apple')\nprint(n)\nx = llm_query('say apple')"), _repl("FINAL('apple')")]


def scripted_root(shape: str):
    def reply(messages: list[dict]) -> Completion:
        text = " ".join(str(m.get("content")) for m in messages)
        child = QUESTION not in text
        script = CHILD if child else SCRIPTS[shape]
        if "no more code will run" in str(messages[-1].get("content")):
            return Completion("probably apple", Usage(1, 900, 5, 0.0009), "scripted-root")
        turn = sum(1 for m in messages if m.get("role") == "assistant")
        return Completion(script[min(turn, len(script) - 1)], Usage(1, 1200 + 300 * turn, 60, 0.0012), "scripted-root")

    return reply


def write_shape(shape: str, log_dir: Path) -> Path:
    """Run the scripted RLM for `shape` (final, max_iterations, sandbox_error, depth2) and return its log."""
    logger = RLMLogger(log_dir, file_name=shape)
    sub = CallableSubModel(lambda prompt: "apple" if "apple" in prompt else "pear", name="scripted-sub")
    rlm = RLM(
        model=None,
        policy=ChatPolicy(scripted_root(shape), model="scripted-root"),
        sub_model=sub,
        sandbox="local" if shape == "sandbox_error" else "inprocess",
        max_iterations=3,
        max_depth=2 if shape == "depth2" else 1,
        logger=logger,
    )
    result = rlm.completion(CONTEXT, root_prompt=QUESTION)
    assert result.finish_reason == {"depth2": "final"}.get(shape, shape), result.finish_reason
    return Path(logger.log_file_path)


def write_big(path: Path, iterations: int = 200, calls: int = 10_000) -> Path:
    """A synthetic log in our format: `iterations` root steps sharing `calls` sub-calls with long texts."""
    per = calls // iterations
    lines = [{"type": "metadata", "root_model": "big-root", "max_iterations": iterations, "max_depth": 1}]
    for n in range(1, iterations + 1):
        rlm_calls = [
            {
                "root_model": "big-sub",
                "prompt": f"chunk {n}.{i}: " + "lorem ipsum " * 400,
                "response": f"answer {n}.{i}",
                "usage_summary": {"model_usage_summaries": {"big-sub": {"total_calls": 1, "total_input_tokens": 1200}}},
                "execution_time": 0.01 * (i % 7),
                "kind": "llm",
            }
            for i in range(per)
        ]
        result = {"stdout": f"iteration {n} output\n" * 50, "stderr": "", "locals": {}, "execution_time": 0.2}
        entry = {
            "type": "iteration",
            "iteration": n,
            "prompt": [{"role": "user", "content": "x" * 20_000}],
            "response": f"step {n}: " + "thinking " * 500,
            "code_blocks": [
                {"code": f"answers = llm_query_batched(prompts[{n}])", "result": result | {"rlm_calls": rlm_calls}}
            ],
            "final_answer": "done" if n == iterations else None,
            "iteration_time": 1.5,
        }
        lines.append(entry)
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


def write_official(log_dir: Path) -> Path:
    """A log written by the official `rlms` package's own logger and types."""
    from rlm.core.types import CodeBlock, REPLResult, RLMIteration, RLMMetadata
    from rlm.logger import RLMLogger as OfficialLogger

    logger = OfficialLogger(str(log_dir), file_name="official")
    logger.log_metadata(RLMMetadata("gpt-official", 1, 5, "openai", {"model_name": "gpt-official"}, "local", {}))
    for n, code in enumerate(["print(len(context))", "FINAL_VAR('answer')"], 1):
        result = REPLResult(stdout=f"{n * 100}\n", stderr="", locals={}, execution_time=0.1)
        final = "forty-two" if n == 2 else None
        messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "What is the answer?"}]
        logger.log(RLMIteration(messages, f"step {n}\n```repl\n{code}\n```", [CodeBlock(code, result)], final, 0.5))
    return Path(logger.log_file_path)
