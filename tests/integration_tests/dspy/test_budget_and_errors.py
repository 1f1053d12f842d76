"""Usage, budgets and provider errors of `rlm_plugins.dspy.RLM` over real `dspy.LM`s on the scripted OpenAI server.

Sub-calls and root turns report their tokens and cost to the engine (so its usage numbers are right and
`max_tokens` / `max_cost` hold), and a provider error (rate limit, auth, timeout) raised through `dspy.LM` ends the
call with a `ModelError` carrying the partial result, as the standalone RLM does.
"""

from __future__ import annotations

import re

import dspy
import pytest
from dspy.utils.exceptions import LMAuthError, LMError, LMRateLimitError

from rlm_plugins.core.events import RunFinished
from rlm_plugins.dspy import RLM
from rlm_plugins.errors import ModelAuthenticationError, ModelError, ModelRateLimitError, ModelTimeoutError
from tests.fakes.openai_server import count_tokens


def _text(body):
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


def _step(body):
    found = re.search(r"\[\[ ## iteration ## \]\]\s*(\d+)/", _text(body))
    return int(found.group(1)) if found else None


def action(step, code):
    return f"[[ ## reasoning ## ]]\nstep {step}\n\n[[ ## code ## ]]\n{code}\n\n[[ ## completed ## ]]"


def extract_reply(body):
    return "[[ ## answer ## ]]\nextracted\n\n[[ ## completed ## ]]"


def server_script(codes, fail=None):
    """Root steps from `codes` (the last repeats), `echo:<prompt>` for sub-calls; `fail` replaces step 2."""

    def reply(body):
        step = _step(body)
        if step is None:
            if "extract" in str(body["messages"][0]["content"]).lower() and "[[ ## answer ## ]]" in str(body):
                return extract_reply(body)
            return f"echo:{_text(body)}"
        if step == 2 and fail is not None:
            return fail
        return action(step, codes[min(step, len(codes)) - 1])

    return reply


def lm(server, name="openai/root"):
    return dspy.LM(name, api_base=server.base_url, api_key="k", cache=False, num_retries=0)


def finished(events):
    return next(e for e in events if isinstance(e, RunFinished) and e.depth == 0).result


def test_sub_calls_and_turns_report_their_tokens(scripted_openai, call):
    server = scripted_openai(server_script(["print(llm_query_batched(['a', 'b', 'c']))", "SUBMIT(answer='done')"]))
    events = []
    rlm = RLM("context -> answer", sub_lm=lm(server, "openai/sub"), sandbox="inprocess", observers=[events.append])
    with dspy.context(lm=lm(server)):
        pred = call(rlm, context="x")
    assert pred.answer == "done"
    usage = finished(events).usage
    assert usage["openai/sub"].calls == 3
    assert usage["openai/sub"].output_tokens == 3 * count_tokens("echo:a")
    assert usage["openai/sub"].input_tokens >= 3
    assert usage["openai/root"].calls == 2
    assert usage["openai/root"].input_tokens > 100


def test_max_tokens_ends_the_call_through_extract(scripted_openai, call):
    server = scripted_openai(server_script(["print(llm_query('more'))"]))
    root = lm(server)
    rlm = RLM("context -> answer", sub_lm=lm(server, "openai/sub"), sandbox="inprocess", max_iters=20, max_tokens=2000)
    with dspy.context(lm=root):
        pred = call(rlm, context="x")
    assert pred.final_reasoning == "Extract forced final output"
    assert pred.answer == "extracted"
    assert len(server.requests) < 20


def test_max_cost_stops_a_batch_in_flight(scripted_openai, call):
    server = scripted_openai(server_script(["print(llm_query_batched([str(i) for i in range(60)]))"]))
    events = []
    sub = lm(server, "openai/gpt-4o-mini")
    rlm = RLM(
        "context -> answer",
        sub_lm=sub,
        sandbox="inprocess",
        max_cost=1e-5,
        max_llm_calls=1000,
        max_concurrency=2,
        observers=[events.append],
    )
    with dspy.context(lm=lm(server)):
        call(rlm, context="x")
    usage = finished(events).usage["openai/gpt-4o-mini"]
    assert usage.cost is not None and usage.cost > 0
    per_call = usage.cost / usage.calls
    assert usage.calls <= 1e-5 / per_call + 2 + 1
    assert usage.calls < 60


@pytest.mark.parametrize(
    ("fail", "error", "native"),
    [
        ({"status": 429, "message": "Rate limit reached for requests"}, ModelRateLimitError, LMRateLimitError),
        ({"status": 401, "message": "Incorrect API key provided"}, ModelAuthenticationError, LMAuthError),
        ({"delay": 5.0, "content": "too late"}, ModelTimeoutError, LMError),
    ],
)
def test_a_provider_error_keeps_the_partial_trajectory(scripted_openai, call, fail, error, native):
    """The error is our ModelError subclass and still the DSPy class `dspy.RLM` callers catch."""
    server = scripted_openai(server_script(["x = 41\nprint('step one ran')"], fail=fail))
    root = dspy.LM("openai/root", api_base=server.base_url, api_key="k", cache=False, num_retries=0, timeout=1.0)
    rlm = RLM("context -> answer", sub_lm=lm(server, "openai/sub"), sandbox="inprocess")
    with dspy.context(lm=root), pytest.raises(error) as raised:
        call(rlm, context="x")
    assert isinstance(raised.value, ModelError) and isinstance(raised.value, native)
    assert raised.value.model == "openai/root"
    partial = raised.value.partial
    assert partial is not None and partial.finish_reason == "error"
    assert partial.trajectory[0]["output"] == ["step one ran\n"]


def test_a_sub_call_provider_error_is_an_error_string_in_its_slot(scripted_openai, call):
    def reply(body):
        if _step(body) is None and _text(body) == "bad":
            return {"status": 429, "message": "Rate limit reached"}
        return server_script(["r = llm_query_batched(['ok', 'bad'])\nprint(r)", "SUBMIT(answer=r[1])"])(body)

    server = scripted_openai(reply)
    rlm = RLM("context -> answer", sub_lm=lm(server, "openai/sub"), sandbox="inprocess")
    with dspy.context(lm=lm(server)):
        pred = call(rlm, context="x")
    assert pred.answer.startswith("[ERROR] [openai/sub] "), "a failed slot reads as in dspy.RLM"
    assert "Rate limit reached" in pred.answer
