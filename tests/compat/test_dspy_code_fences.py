"""The code of a `generate_action` answer is read from its fences as `dspy.RLM` reads it."""

from __future__ import annotations

import pytest

from rlm_plugins.dspy._fences import strip_code_fences


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("x = 1", "x = 1"),
        ("```python\nx = 1\n```", "x = 1"),
        ("```py3\nx = 1\n```", "x = 1"),
        ("```\nx = 1\n```", "x = 1"),
        ("```\n```python\nx = 1\n```\n```", "x = 1"),
        ("First I look.\n```python\nprint(len(context))\n```\nThen I decide.", "print(len(context))"),
        ("```python\nx = 1", "x = 1"),
        ("```Python extra words\nx = 1\n```", "x = 1"),
        ("  ```python\nprint(1)\n```  ", "print(1)"),
        ("```", "```"),
        ("```python\na = 1\n```\n```python\nb = 2\n```", "a = 1"),
    ],
)
def test_python_fences(text, code):
    assert strip_code_fences(text) == code


@pytest.mark.parametrize("lang", ["sql", "bash", "json"])
def test_other_languages_are_a_syntax_error_naming_them(lang):
    with pytest.raises(SyntaxError, match=f"got ```{lang} fence. Write Python code, not {lang}"):
        strip_code_fences(f"```{lang}\nselect 1\n```")
