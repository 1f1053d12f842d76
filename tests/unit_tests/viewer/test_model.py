"""What the viewer reads from each log shape, and how it keeps the page small."""

from __future__ import annotations

import json

import pytest

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.viewer import load_log, render_page, write_html
from rlm_plugins.viewer._html import script_json


def only_run(path):
    data = load_log(path)
    assert data["problems"] == []
    assert len(data["runs"]) == 1
    return data["runs"][0]


def test_final_run_has_answer_usage_and_sub_calls(shape_logs):
    run = only_run(shape_logs["final"])
    assert run["end"]["finish_reason"] == "final" and run["end"]["answer"] == "apple"
    assert run["totals"]["iterations"] == 3
    assert run["totals"]["sub_calls"] == 10
    assert run["iterations"][0]["usage"]["input_tokens"] == 1200
    calls = run["iterations"][1]["blocks"][0]["calls"]
    assert calls["count"] == 10 and calls["models"] == {"scripted-sub": 10}
    assert run["metadata"]["environment"] == "inprocess"


def test_budget_end_has_no_answer_but_the_extracted_guess(shape_logs):
    end = only_run(shape_logs["max_iterations"])["end"]
    assert end["finish_reason"] == "max_iterations" and not end["inferred"]
    assert end["answer"] is None and end["extracted"] == "probably apple"


def test_sandbox_error_says_what_failed(shape_logs):
    end = only_run(shape_logs["sandbox_error"])["end"]
    assert end["finish_reason"] == "sandbox_error"
    assert any("REPL state is lost" in note for note in end["notes"])


def test_depth_two_nests_the_child_run(shape_logs):
    run = only_run(shape_logs["depth2"])
    calls = run["iterations"][0]["blocks"][0]["calls"]
    assert calls["rlm"] == 1
    (child,) = calls["children"]
    assert child["end"]["finish_reason"] == "final" and child["totals"]["iterations"] == 2
    assert child["iterations"][0]["blocks"][0]["calls"]["llm"] == 1
    assert child["prompt"] == "Most common fruit here?"


def test_official_log_is_read_and_its_end_inferred(shape_logs):
    run = only_run(shape_logs["official"])
    assert run["end"] == {"finish_reason": "final", "answer": "forty-two", "inferred": True, "notes": []}
    assert run["metadata"]["root_model"] == "gpt-official"
    assert run["query"] == "What is the answer?"


def test_big_run_is_sampled_and_clipped(shape_logs):
    run = only_run(shape_logs["big"])
    assert run["totals"]["sub_calls"] == 10_000 and run["totals"]["iterations"] == 200
    block = run["iterations"][0]["blocks"][0]
    assert block["calls"]["count"] == 50 and len(block["calls"]["sample"]) == 12
    assert block["calls"]["usage"]["input_tokens"] == 50 * 1200
    assert block["calls"]["sample"][0]["prompt"]["total"] > 4000
    page = render_page(load_log(shape_logs["big"]))
    assert len(page) < shape_logs["big"].stat().st_size / 10


def test_bad_lines_are_reported_and_skipped(tmp_path, shape_logs):
    log = tmp_path / "broken.jsonl"
    log.write_text(shape_logs["final"].read_text() + "{not json\n[1, 2]\n")
    data = load_log(log)
    assert len(data["problems"]) == 2 and "not JSON" in data["problems"][0]
    assert data["runs"][0]["end"]["finish_reason"] == "final"


def test_several_runs_in_one_log_are_kept_apart(tmp_path, shape_logs):
    log = tmp_path / "two.jsonl"
    log.write_text(shape_logs["final"].read_text() + shape_logs["max_iterations"].read_text())
    reasons = [run["end"]["finish_reason"] for run in load_log(log)["runs"]]
    assert reasons == ["final", "max_iterations"]


def test_page_is_self_contained_and_script_safe(shape_logs, tmp_path):
    log = tmp_path / "evil.jsonl"
    text = shape_logs["final"].read_text().replace("apple", "</script><script>alert(1)</script>")
    log.write_text(text)
    page = write_html(log).read_text()
    assert page.count("</script>") == 3
    assert "<link" not in page and "src=" not in page and "http://" not in page and "https://" not in page
    assert json.loads(script_json({"a": "</script>"}).encode().decode("unicode_escape")) == {"a": "</script>"}


def test_write_html_defaults_next_to_the_log_and_reports_bad_paths(shape_logs, tmp_path):
    assert write_html(shape_logs["official"]) == shape_logs["official"].with_suffix(".html")
    with pytest.raises(ConfigurationError, match="cannot read the log"):
        write_html(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigurationError, match="pass another --out"):
        write_html(shape_logs["official"], tmp_path / "no" / "dir" / "x.html")
