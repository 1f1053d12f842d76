from __future__ import annotations

import re

from rlm_plugins.core.feedback import clip, format_exec_result, model_error
from rlm_plugins.core.ports import CodeRun, ContextInfo, RunState, Step, ToolSpec
from rlm_plugins.core.prompts import describe_value, extract_prompt, system_prompt, user_prompt
from rlm_plugins.repl.base import ExecError, ExecResult, FinalAnswer


def make_state(**overrides: object) -> RunState:
    values: dict = {
        "query": "What is the magic number?",
        "variables": [describe_value("context", "The magic number is 7. " * 10)],
        "tools": [],
        "history": [],
        "iteration": 1,
        "max_iterations": 20,
    }
    values.update(overrides)
    return RunState(**values)


def test_describe_str_keeps_a_short_preview_of_a_huge_value():
    big = "a" * 50_000_000 + "SECRET"
    info = describe_value("context", big, preview_chars=100)
    assert info == ContextInfo("context", "str", 50_000_006, None, "a" * 100)


def test_describe_list_has_item_lengths_capped_at_100_and_a_bounded_preview():
    items = ["x" * 1_000_000] + [f"doc {i}" for i in range(499)]
    info = describe_value("docs", items, preview_chars=200)
    assert info.type == "list[str]"
    assert info.length == 500
    assert info.chunk_lengths is not None and len(info.chunk_lengths) == 100
    assert info.chunk_lengths[:2] == [1_000_000, 5]
    assert len(info.preview) <= 200
    assert info.preview.startswith("['xxx")


def test_describe_dict_bytes_and_nested_values():
    info = describe_value("d", {"a": "hello", "b": [1, 2, 3]})
    assert (info.type, info.length, info.chunk_lengths) == ("dict", 2, [5, 3])
    assert info.preview == "{'a': 'hello', 'b': [1, 2, 3]}"
    raw = describe_value("raw", b"caf\xc3\xa9 \xff" * 1000, preview_chars=8)
    assert raw.type == "bytes" and raw.length == 7000
    assert raw.preview == "café \ufffdca"
    loop: list = []
    loop.append(loop)
    assert len(describe_value("loop", loop).preview) <= 500


def test_describe_file_reads_only_its_head(tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("Chapter 1\n" + "words " * 100_000)
    info = describe_value("context", path, preview_chars=9)
    assert info.type == "file book.txt"
    assert info.length == path.stat().st_size
    assert info.preview == "Chapter 1"


def test_system_prompt_describes_variables_functions_and_limits():
    state = make_state(
        variables=[describe_value("context", ["alpha", "beta"])],
        tools=[ToolSpec("search", "(query: str) -> list[str]", "Search the index.\n   Returns ids.")],
        max_output_chars=5_000,
        depth=0,
        max_depth=2,
        inputs={"language": "French"},
    )
    text = system_prompt(state)
    assert "`context`: list[str], 2 items; lengths of the items: [5, 4] (total 9)" in text
    assert "['alpha', 'beta']" in text
    for name in ("llm_query(", "llm_query_batched(", "rlm_query(", "FINAL(value)", "FINAL_VAR(", "SHOW_VARS()"):
        assert name in text
    assert "`search(query: str) -> list[str]`: Search the index. Returns ids." in text
    assert "5,000 characters" in text
    assert "`language` = 'French'" in text
    assert "last line" in text and "expression" in text
    assert "SUBMIT" not in text


def test_system_prompt_without_recursion_and_with_submit_fields():
    text = system_prompt(make_state(depth=1, max_depth=1, final_fields=["answer", "confidence"]))
    assert "rlm_query" not in text
    assert "SUBMIT(answer=..., confidence=...)" in text
    assert "FINAL(value)" not in text


def test_system_prompt_never_holds_more_than_the_preview():
    marker = "NEEDLE-42"
    context = "hay " * 1_000 + marker
    text = system_prompt(make_state(variables=[describe_value("context", context)]))
    assert marker not in text
    assert "4,009 characters" in text


def test_user_prompt_first_middle_and_last_turns():
    first = user_prompt(make_state(iteration=1))
    assert "What is the magic number?" in first
    assert "Turn 1 of 20" in first
    assert "not looked at the data" in first
    step = Step(1, "", "")
    middle = user_prompt(make_state(iteration=5, history=[step]))
    assert "Turn 5 of 20" in middle and "not looked" not in middle and "left" not in middle
    near = user_prompt(make_state(iteration=18, history=[step]))
    assert "Only 3 turns are left" in near
    last = user_prompt(make_state(iteration=20, history=[step]))
    assert "last turn" in last and "Only" not in last


def test_extract_prompt_asks_for_the_answer_or_the_fields():
    assert "What is the magic number?" in extract_prompt(make_state())
    assert "no code" in extract_prompt(make_state())
    fields = extract_prompt(make_state(final_fields=["answer", "score"]))
    assert "JSON object" in fields and "'answer', 'score'" in fields


def run(code: str = "print(x)", **result: object) -> CodeRun:
    return CodeRun(code, ExecResult(**result))


def test_format_exec_result_shows_code_output_and_notes():
    text = format_exec_result(run(stdout="42\n"), 1_000)
    assert text == "```repl\nprint(x)\n```\nOutput:\n42"
    silent = format_exec_result(run("x = 1"), 1_000)
    assert "printed nothing" in silent
    final = format_exec_result(run("FINAL('Paris')", final=FinalAnswer("Paris")), 1_000)
    assert "[FINAL reached: 'Paris']" in final and "printed nothing" not in final


def test_format_exec_result_truncates_and_counts_sandbox_cuts():
    text = format_exec_result(run(stdout="y" * 50_000, stdout_cut=7), 2_000)
    assert len(text) <= 2_000
    shown = text.split("Output:\n")[1].split("\n[output truncated")[0]
    middle = int(re.search(r"\[\.\.\. ([\d,]+) characters cut", shown).group(1).replace(",", ""))
    assert middle == 50_000 - shown.count("y")
    assert f"[output truncated: {middle + 7:,} characters cut" in text


def test_format_exec_result_errors_and_timeouts():
    error = ExecError("ZeroDivisionError", "division by zero", "Traceback...\nZeroDivisionError: division by zero")
    text = format_exec_result(run("1/0", error=error), 1_000)
    assert "[Error] This block raised an exception" in text and "ZeroDivisionError: division by zero" in text
    syntax = format_exec_result(run("x = (", error=ExecError("SyntaxError", "'(' was never closed")), 1_000)
    assert "syntax error, so none of it ran" in syntax
    slow = format_exec_result(run("while True: pass", timed_out=True, duration=30.2), 1_000)
    assert "timed out after 30s" in slow and "printed nothing" not in slow


def test_clip_and_model_error():
    assert clip("short", 10) == "short"
    clipped = clip("a" * 500 + "b" * 500, 200)
    assert len(clipped) <= 200 and clipped.startswith("a") and clipped.endswith("b") and "characters cut" in clipped
    assert model_error(" Write code. ") == "[Error] Write code."
