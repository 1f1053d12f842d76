"""`completion()` returns the official `RLMChatCompletion` shape, with our fields kept."""

from __future__ import annotations

import asyncio
import json

import pytest

from rlm_plugins import RLM, RLMLogger, RLMResult
from rlm_plugins.core.result import ModelUsageSummary, UsageSummary
from rlm_plugins.standalone.completion import RLMChatCompletion
from tests.compat._rlms_clients import OFFICIAL, Clients, answer, repl


def _two_models(clients: Clients) -> RLM:
    clients.add("root-m", [repl("print(llm_query('hi'))"), answer("done")], tokens=(100, 20), cost=0.01)
    clients.add("sub-m", ["sub says hi"], tokens=(7, 3))
    return RLM(
        **OFFICIAL,
        backend_kwargs={"model_name": "root-m"},
        other_backends=["openai"],
        other_backend_kwargs=[{"model_name": "sub-m"}],
    )


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_completion_has_the_official_fields(clients: Clients, mode: str) -> None:
    rlm = _two_models(clients)
    if mode == "sync":
        result = rlm.completion("the context", root_prompt="q?")
    else:
        result = asyncio.run(rlm.acompletion("the context", root_prompt="q?"))
    assert isinstance(result, RLMChatCompletion) and isinstance(result, RLMResult)
    assert (result.root_model, result.prompt, result.response) == ("root-m", "the context", "done")
    assert result.execution_time > 0 and result.metadata is None


def test_usage_summary_is_keyed_by_client_model_name(clients: Clients) -> None:
    usage = _two_models(clients).completion("ctx").usage_summary
    assert isinstance(usage, UsageSummary)
    assert usage.model_usage_summaries == {
        "root-m": ModelUsageSummary(2, 200, 40, 0.02),
        "sub-m": ModelUsageSummary(1, 7, 3, None),
    }
    assert (usage.total_input_tokens, usage.total_output_tokens) == (207, 43)


def test_to_dict_is_the_official_dict_plus_finish_reason(clients: Clients) -> None:
    out = _two_models(clients).completion("ctx").to_dict()
    assert set(out) == {"root_model", "prompt", "response", "usage_summary", "execution_time", "finish_reason"}
    assert out["usage_summary"]["model_usage_summaries"]["sub-m"] == {
        "total_calls": 1,
        "total_input_tokens": 7,
        "total_output_tokens": 3,
    }
    assert UsageSummary.from_dict(json.loads(json.dumps(out["usage_summary"]))).total_input_tokens == 207


def test_metadata_is_the_loggers_trajectory(clients: Clients, tmp_path) -> None:
    clients.add("m", [repl("x = 1"), answer("one")])
    logger = RLMLogger(tmp_path)
    result = RLM(**OFFICIAL, backend_kwargs={"model_name": "m"}, logger=logger).completion("ctx")
    assert result.metadata is not None and result.metadata["run_metadata"]["root_model"] == "m"
    assert len(result.metadata["iterations"]) == 2
    assert result.to_dict()["metadata"] == result.metadata


def test_our_fields_stay(clients: Clients) -> None:
    result = _two_models(clients).completion("ctx")
    assert (result.finish_reason, result.answer, result.iterations) == ("final", "done", 2)
    assert result.trajectory[0]["output"] == ["sub says hi\n"]
    assert result.cost_report is not None
