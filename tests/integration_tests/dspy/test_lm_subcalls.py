"""Sub-calls through real `dspy.LM` objects talking HTTP to the scripted OpenAI-compatible server on loopback.

Root and sub-model are both `dspy.LM("openai/...")`: the sub-calls must land in `lm.history` and
`dspy.inspect_history`, fire `on_lm_start`, count in `track_usage`, and come from DSPy's cache on a repeat call.
"""

from __future__ import annotations

import io
import re
import threading
import uuid

import dspy
import pytest
from dspy.utils.callback import BaseCallback

from rlm_plugins.dspy import RLM

FAN_OUT = "r = llm_query_batched([f'{w} {context}' for w in ('a', 'b', 'c')])\nprint(r)"


def _text(body):
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


def rlm_server(body):
    """The root model's two steps in ChatAdapter format, and `echo:<prompt>` for every sub-call."""
    text = _text(body)
    step = re.search(r"\[\[ ## iteration ## \]\]\s*(\d+)/", text)
    if step is None:
        return f"echo:{text}"
    code = FAN_OUT if step.group(1) == "1" else "SUBMIT(answer=r)"
    return f"[[ ## reasoning ## ]]\nstep {step.group(1)}\n\n[[ ## code ## ]]\n{code}\n\n[[ ## completed ## ]]"


class Starts(BaseCallback):
    def __init__(self):
        self.models = []
        self.lock = threading.Lock()

    def on_lm_start(self, call_id, instance, inputs):
        with self.lock:
            self.models.append(instance.model)


def lms(server, cache):
    root = dspy.LM("openai/root", api_base=server.base_url, api_key="k", cache=cache)
    sub = dspy.LM("openai/sub", api_base=server.base_url, api_key="k", cache=cache)
    return root, sub


def test_sub_calls_reach_history_callbacks_and_usage(scripted_openai, call):
    server = scripted_openai(rlm_server)
    root, sub = lms(server, cache=False)
    starts = Starts()
    nonce = uuid.uuid4().hex
    rlm = RLM("context -> answer: list[str]", sub_lm=sub)
    with dspy.context(lm=root, callbacks=[starts], track_usage=True):
        pred = call(rlm, context=nonce)
    assert pred.answer == [f"echo:{w} {nonce}" for w in "abc"]
    assert sorted(entry["prompt"] for entry in sub.history) == [f"{w} {nonce}" for w in "abc"]
    assert len(root.history) == 2
    assert sorted(starts.models) == ["openai/root"] * 2 + ["openai/sub"] * 3
    usage = pred.get_lm_usage()
    assert set(usage) == {"openai/root", "openai/sub"}
    assert usage["openai/sub"]["total_tokens"] > 0
    shown = io.StringIO()
    dspy.inspect_history(n=5, file=shown)
    assert f"echo:c {nonce}" in shown.getvalue() or f"echo:a {nonce}" in shown.getvalue()
    assert len(server.requests) == 5


def test_without_sub_lm_the_context_lm_serves_sub_calls(scripted_openai, call):
    server = scripted_openai(rlm_server)
    root, _ = lms(server, cache=False)
    rlm = RLM("context -> answer: list[str]")
    with dspy.context(lm=root):
        pred = call(rlm, context="x")
    assert pred.answer == [f"echo:{w} x" for w in "abc"]
    assert len(root.history) == 5


@pytest.mark.parametrize("sandbox", ["local", "inprocess"])
def test_an_identical_second_call_is_served_from_dspy_cache(scripted_openai, call, sandbox):
    server = scripted_openai(rlm_server)
    root, sub = lms(server, cache=True)
    nonce = uuid.uuid4().hex
    rlm = RLM("context -> answer: list[str]", sub_lm=sub, sandbox=sandbox)
    with dspy.context(lm=root):
        first = call(rlm, context=nonce)
        sent = len(server.requests)
        second = call(rlm, context=nonce)
    assert sent == 5
    assert len(server.requests) == sent, "the repeat call made HTTP requests"
    assert second.answer == first.answer == [f"echo:{w} {nonce}" for w in "abc"]
