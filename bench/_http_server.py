"""The loopback OpenAI-compatible server every engine talks to in `bench_engine.py --http`, in its own process.

Run as a script it prints its base URL on one line and serves until stdin closes. Its script answers each
engine's root model by the marker in the root prompt (ours, the official rlms, dspy.RLM) and the current turn,
and answers every sub-call "ok" (after 100 ms for W3 prompts).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workloads import fanout_code, fence, root_replies

from tests.fakes.openai_server import ScriptedOpenAIServer

W3_CALLS = 1000
W3_LATENCY = 0.1
OFFICIAL_FINAL = "answer['content'] = 'done'\nanswer['ready'] = True"
W3_CODE = f"r = llm_query_batched(['w3 ' + str(i) for i in range({W3_CALLS})])\nFINAL(len(r))"
_FANOUT_MARK = "llm_query_batched([f'chunk "


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _dspy_reply(turn: int) -> str:
    code = fanout_code(turn + 1, False) if turn < 3 else "SUBMIT(answer='done')"
    return f"[[ ## reasoning ## ]]\nstep {turn}\n\n[[ ## code ## ]]\n{code}\n\n[[ ## completed ## ]]"


def script(body: dict[str, Any]) -> str | dict[str, Any]:
    """Root requests carry a system message and a marker naming the engine; everything else is a sub-call."""
    messages = body.get("messages") or []
    if not messages or messages[0].get("role") != "system":
        prompt = _content(messages[-1]) if messages else ""
        return {"content": "ok", "delay": W3_LATENCY} if prompt.startswith("w3 ") else "ok"
    text = "\n".join(_content(m) for m in messages)
    turn = sum(1 for m in messages if m.get("role") == "assistant")
    if "W3-BENCH" in text:
        return fence(W3_CODE)
    if "W2-BENCH dspy" in text:
        return _dspy_reply(text.count(_FANOUT_MARK))
    replies = root_replies(False, OFFICIAL_FINAL if "W2-BENCH official" in text else "FINAL('done')")
    return replies[min(turn, len(replies) - 1)]


def main() -> None:
    with ScriptedOpenAIServer(script, models=["root", "sub"]) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
