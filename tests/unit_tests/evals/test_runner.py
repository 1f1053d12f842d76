"""The runner and `rlm-plugins eval` offline: JSONL rows, summary, report and plot; `direct` refuses inputs
past the context window; everything also runs against an OpenAI-compatible endpoint (`--api-base`)."""

from __future__ import annotations

import asyncio
import json
import pathlib

import pytest

from rlm_plugins.cli import main
from rlm_plugins.evals import TASKS, Settings, make_examples, oracle_answer, run_method
from rlm_plugins.evals.methods import context_window
from rlm_plugins.evals.oracle import OracleRoot
from rlm_plugins.evals.summary import mean_ci, percentile, summarize

FIELDS = {"answer", "score", "usage", "cost", "seconds", "finish_reason", "log_path", "method", "example_id"}


def test_eval_command_writes_rows_summary_logs_and_a_report(tmp_path, capsys):
    out = tmp_path / "run"
    methods = "rlm,rlm-depth0,direct,direct-truncated"
    argv = ["eval", "aggregate", "--model", "oracle", "--n", "3", "--size", "2000", "--methods", methods]
    assert main([*argv, "--sandbox", "inprocess", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and all(set(row) >= FIELDS for row in rows)
    by_method = {m: [r for r in rows if r["method"] == m] for m in methods.split(",")}
    assert [r["score"] for r in by_method["rlm"]] == [1.0, 1.0, 1.0]
    assert {r["finish_reason"] for r in by_method["rlm"]} == {"final"}
    assert all(r["score"] < 1.0 and r["usage"]["calls"] >= 3 for r in by_method["rlm-depth0"])
    assert all(pathlib.Path(r["log_path"]).is_file() for r in by_method["rlm"])
    summary = json.loads((out / "summary.json").read_text())
    assert [s["method"] for s in summary] == methods.split(",")
    assert "rlm-plugins eval" in capsys.readouterr().out

    assert main(["eval", "--report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert (out / "score_vs_cost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for row in by_method["rlm"]:
        link = pathlib.Path(row["log_path"]).relative_to(out).as_posix()
        assert f"href='{link}'" in page
    assert "score_vs_cost.png" in page and "aggregate" in page


def test_eval_command_refuses_missing_arguments_and_unknown_methods(tmp_path, capsys):
    assert main(["eval", "niah"]) == 2
    assert "--model" in capsys.readouterr().err
    argv = ["eval", "niah", "--model", "oracle", "--methods", "rlm,magic", "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "unknown methods ['magic']" in capsys.readouterr().err
    assert main(["eval", "--report", str(tmp_path / "nothing")]) == 2


def test_direct_refuses_input_past_the_context_window_without_calling():
    example = make_examples(TASKS["niah"], 1, seed=0, size=3_000)[0]
    outcome = asyncio.run(run_method("direct", example, Settings(model="oracle", context_window=2_000)))
    assert outcome.finish_reason == "refused_context"
    assert outcome.answer is None and outcome.usage.calls == 0
    assert "context window is 2,000" in outcome.error and "direct-truncated" in outcome.error


def test_direct_uses_the_window_litellm_knows():
    settings = Settings(model="openai/gpt-4o-mini")
    window = context_window(settings)
    assert window == 128_000
    example = make_examples(TASKS["niah"], 1, seed=0, size=150_000)[0]
    outcome = asyncio.run(run_method("direct", example, settings))
    assert outcome.finish_reason == "refused_context"
    assert context_window(Settings(model="openai/not-a-model-litellm-knows")) is None


def test_direct_truncated_keeps_only_what_fits():
    example = make_examples(TASKS["niah"], 1, seed=0, size=6_000, variant="single")[0]
    outcome = asyncio.run(run_method("direct-truncated", example, Settings(model="oracle", context_window=3_000)))
    assert outcome.finish_reason == "truncated"
    assert outcome.usage.input_tokens <= 3_000
    fits = asyncio.run(run_method("direct-truncated", example, Settings(model="oracle", context_window=10_000)))
    assert (fits.finish_reason, TASKS["niah"].score(fits.answer, example)) == ("answered", 1.0)


def scripted_endpoint(examples):
    """An OpenAI-compatible model that answers as the oracle: root turns, sub-calls and direct prompts."""
    by_question = {e.question: e for e in examples}

    def reply(body):
        messages = body["messages"]
        text = "".join(m["content"] for m in messages)
        example = next((e for q, e in by_question.items() if q in text), None)
        if len(messages) == 1 and "<<<TEXT" in text:
            return str(example.answer)
        if example is None or len(messages) == 1:
            return oracle_answer(messages[-1]["content"]).text
        return OracleRoot(example)(messages).text

    return reply


def test_eval_against_an_openai_compatible_endpoint(tmp_path, scripted_openai):
    examples = make_examples(TASKS["aggregate"], 2, seed=5, size=2_000)
    server = scripted_openai(scripted_endpoint(examples))
    out = tmp_path / "endpoint"
    argv = ["eval", "aggregate", "--model", "openai/scripted-model", "--n", "2", "--seed", "5", "--size", "2000"]
    argv += ["--api-base", server.base_url, "--context-window", "4000", "--methods", "rlm,direct"]
    assert main([*argv, "--sandbox", "inprocess", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["method"], r["score"]) for r in rows] == [("rlm", 1.0), ("direct", 1.0)] * 2
    assert all(r["usage"]["calls"] >= 1 and r["usage"]["input_tokens"] > 0 for r in rows)
    direct = [r for r in server.requests if "<<<TEXT" in r["messages"][0]["content"]]
    assert len(direct) == 2


def test_summary_statistics_by_hand():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5.0], 95) == 5.0
    assert mean_ci([1.0, 0.0]) == (0.5, 0.0, 1.0)
    rows = [
        {
            "task": "t",
            "method": "m",
            "score": s,
            "cost": c,
            "usage": {"total_tokens": 10},
            "seconds": 1.0,
            "finish_reason": f,
        }
        for s, c, f in [(1.0, 0.5, "final"), (0.0, None, "max_iterations"), (1.0, 1.5, "final")]
    ]
    (item,) = summarize(rows)
    assert item["n"] == 3 and item["score"] == pytest.approx(2 / 3)
    assert item["cost"] == {"mean": 1.0, "median": 1.0, "p95": pytest.approx(1.45)}
    assert item["finish_reasons"] == {"final": 2, "max_iterations": 1}
