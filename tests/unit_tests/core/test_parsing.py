from __future__ import annotations

import random

import pytest

from rlm_plugins.core.parsing import FinalVar, ParsedReply, parse_reply

FENCE = "```"


def reply(*parts: str) -> str:
    return "\n".join(parts)


def test_repl_and_python_blocks_in_order_with_reasoning_before_the_first():
    text = reply(
        "  I will look first.  ",
        "```repl",
        "print(len(context))",
        "```",
        "Then a second block:",
        "```python",
        "x = context[:10]",
        "print(x)",
        "```",
        "```py",
        "y = 1",
        "```",
    )
    parsed = parse_reply(text)
    assert parsed.code == ["print(len(context))", "x = context[:10]\nprint(x)", "y = 1"]
    assert parsed.reasoning == "I will look first."
    assert not parsed.has_final
    assert parsed.notes == []


def test_invented_output_after_the_last_block_is_cut_from_cleaned():
    text = reply(
        "Counting.",
        "```repl",
        "print(len(context))",
        "```",
        "REPL output:",
        "```",
        "123456",
        "```",
        "So the length is 123456.",
    )
    parsed = parse_reply(text)
    assert parsed.code == ["print(len(context))"]
    assert parsed.cleaned == "Counting.\n```repl\nprint(len(context))\n```"
    assert "123456" not in parsed.cleaned


def test_text_final_accepted_only_without_code():
    assert parse_reply("The answer is ready.\nFINAL(42)").final == 42
    parsed = parse_reply(reply("```repl", "x = 6 * 7", "```", "Output: 42", "FINAL(42)"))
    assert parsed.code == ["x = 6 * 7"]
    assert not parsed.has_final
    assert parsed.final is None
    assert len(parsed.notes) == 1
    assert "ignored" in parsed.notes[0] and "inside a ```repl block" in parsed.notes[0]
    assert parsed.notes[0].startswith("[Error] ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FINAL(42)", 42),
        ("FINAL('Paris')", "Paris"),
        ('FINAL("""two\nlines""")', "two\nlines"),
        ("FINAL([1, (2, 3), {'a': 'b)'}])", [1, (2, 3), {"a": "b)"}]),
        ("FINAL(The user's pick (blue))", "The user's pick (blue)"),
        ("FINAL(Paris, France)", "Paris, France"),
        ('**Answer:** FINAL("x(y)")', "x(y)"),
        ("FINAL(a multi-line\nprose answer (with parens))", "a multi-line\nprose answer (with parens)"),
        ("  - FINAL(`quoted`)", "quoted"),
        ("FINAL(42", 42),
    ],
)
def test_text_final_arguments(text: str, expected: object):
    parsed = parse_reply(text)
    assert parsed.has_final
    assert parsed.final == expected
    assert parsed.code == []
    assert parsed.notes == []


def test_final_var_becomes_a_marker():
    parsed = parse_reply("Done.\nFINAL_VAR(result)")
    assert parsed.final == FinalVar("result")
    assert parse_reply("FINAL_VAR('answer_text')").final == FinalVar("answer_text")


def test_last_final_wins_and_prose_mentions_are_not_answers():
    assert parse_reply("FINAL(1)\nOn second thought:\nFINAL(2)").final == 2
    parsed = parse_reply("I will call FINAL(answer) once I know more.")
    assert not parsed.has_final
    assert parsed.notes and "no ```repl block" in parsed.notes[0]
    assert not parse_reply("MY_FINAL(3)").has_final


def test_final_inside_code_is_code_not_text_final():
    parsed = parse_reply(reply("```repl", "FINAL(answer)", "```"))
    assert parsed.code == ["FINAL(answer)"]
    assert not parsed.has_final
    assert parsed.notes == []


@pytest.mark.parametrize("text", [None, "", "   \n\t  "])
def test_empty_reply_gets_a_note(text: str | None):
    parsed = parse_reply(text)
    assert parsed.code == [] and not parsed.has_final
    assert len(parsed.notes) == 1
    assert "empty" in parsed.notes[0] and "```repl" in parsed.notes[0] and "FINAL" in parsed.notes[0]


def test_non_python_fence_gets_a_note_and_does_not_run():
    parsed = parse_reply(reply("```bash", "ls -la", "```", "```json", '{"a": 1}', "```"))
    assert parsed.code == []
    assert any("Only Python runs" in note and "```bash" in note for note in parsed.notes)
    assert any("```json" in note for note in parsed.notes)


def test_display_fences_get_no_python_note():
    parsed = parse_reply(reply("```repl", "print(1)", "```", "```text", "1", "```"))
    assert parsed.notes == []


def test_bare_fence_runs_when_it_holds_code_and_nothing_is_labelled():
    parsed = parse_reply(reply("```", "n = len(context)", "print(n)", "```"))
    assert parsed.code == ["n = len(context)\nprint(n)"]
    for data in ("12345", "hello", "[1, 2, 3]", "this is not python at all"):
        assert parse_reply(reply("```", data, "```")).code == []


def test_bare_fence_is_output_when_a_labelled_block_exists():
    parsed = parse_reply(reply("```repl", "x = 1", "```", "```", "y = x + 1", "```"))
    assert parsed.code == ["x = 1"]


def test_fence_inside_a_python_string_does_not_close_the_block():
    code = reply('prompt = """Answer as', "```json", '{"k": 1}', "```", '"""', "print(llm_query(prompt))")
    parsed = parse_reply(reply("```python", code, "```", "trailing invented output"))
    assert parsed.code == [code]
    assert "trailing" not in parsed.cleaned


def test_unclosed_final_block_still_runs_and_cleaned_closes_it():
    parsed = parse_reply("Go.\n```repl\nprint(1)\n")
    assert parsed.code == ["print(1)"]
    assert parsed.cleaned.endswith("```")
    assert parse_reply(parsed.cleaned).code == ["print(1)"]


def test_indented_block_is_dedented_and_tildes_work():
    parsed = parse_reply("1. step\n   ```repl\n   for x in [1]:\n       print(x)\n   ```\n~~~python\nz = 2\n~~~")
    assert parsed.code == ["for x in [1]:\n    print(x)", "z = 2"]


def test_close_written_on_the_last_code_line_and_one_liners():
    assert parse_reply("```repl\nprint(1)```").code == ["print(1)"]
    assert parse_reply("```repl print(2)```").code == ["print(2)"]
    assert parse_reply("Write code in ```repl``` blocks.\n```repl\nprint(3)\n```").code == ["print(3)"]


def test_crlf_and_language_case():
    assert parse_reply("```Python\r\nprint(1)\r\n```\r\n").code == ["print(1)"]


def _random_reply(rng: random.Random) -> str:
    pieces = [
        "```",
        "```repl",
        "```python",
        "```bash",
        "~~~",
        "\n",
        "FINAL(",
        "FINAL_VAR(",
        ")",
        "(",
        "'",
        '"',
        '"""',
        "\\",
        "print(1)",
        "x = (",
        " ",
        "é",
        "\x00",
        "\u2028",
        "`",
        "{",
        "]",
        "REPL output:",
    ]
    count = rng.randint(0, 40)
    if rng.random() < 0.3:
        return "".join(chr(rng.randint(0, 0x2FFF)) for _ in range(count * 3))
    return "".join(rng.choice(pieces) for _ in range(count))


def test_fuzz_never_raises_and_keeps_invariants():
    rng = random.Random(20251125)
    for _ in range(600):
        text = _random_reply(rng)
        parsed = parse_reply(text)
        assert isinstance(parsed, ParsedReply)
        assert all(isinstance(code, str) and code.strip() for code in parsed.code)
        assert not (parsed.code and parsed.has_final)
        assert parsed.has_final or parsed.final is None
        assert parsed.code or parsed.has_final or parsed.notes
        again = parse_reply(parsed.cleaned)
        assert again.code == parsed.code, text


def test_fuzz_odd_types_and_sizes():
    assert parse_reply(123).notes  # type: ignore[arg-type]
    big = "FINAL(" + "(" * 5000 + ")" * 5000 + ")"
    assert parse_reply(big).has_final
    many = "```repl\nx = (\n" + "```\n" * 300
    assert parse_reply(many).code == ["x = ("]
