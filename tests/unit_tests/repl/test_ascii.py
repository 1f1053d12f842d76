"""Zero-copy ASCII views: the same bytes as encoding, refused for anything that is not a plain ASCII str."""

from __future__ import annotations

import hashlib

import pytest

from rlm_plugins.repl import create_sandbox
from rlm_plugins.repl._ascii import ascii_view


def test_ascii_view_is_the_utf8_encoding():
    text = "".join(chr(32 + i % 95) for i in range(100_003))
    view = ascii_view(text)
    assert view is not None and view.readonly
    assert bytes(view) == text.encode("utf-8")


@pytest.mark.parametrize("text", ["café", "emoji 🎉", "\udcff surrogate"])
def test_non_ascii_text_takes_the_encode_path(text):
    assert ascii_view(text) is None


def test_str_subclasses_are_not_trusted():
    class Text(str):
        pass

    assert ascii_view(Text("plain")) is None


@pytest.mark.parametrize("text", ["ascii line\n" * 200_000, "naïve café ✓\n" * 100_000])
def test_large_text_arrives_byte_for_byte(text):
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with create_sandbox("local") as sb:
        sb.load("context", text)
        result = sb.execute("import hashlib\nhashlib.sha256(context.encode('utf-8')).hexdigest()")
    assert result.value == digest
