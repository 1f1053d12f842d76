"""Guards the langchain-core private name isolated in `rlm_plugins.langchain._lc_private`."""

from __future__ import annotations

import pathlib

from langchain_core.tracers.event_stream import _AstreamEventsCallbackHandler

from rlm_plugins.langchain._lc_private import StreamingCallbackHandler

PACKAGE = pathlib.Path(__file__).resolve().parents[3] / "rlm_plugins"


def test_the_streaming_marker_still_marks_langchains_streaming_handlers():
    assert issubclass(_AstreamEventsCallbackHandler, StreamingCallbackHandler)
    assert callable(getattr(StreamingCallbackHandler, "tap_output_iter", None))


def test_no_other_module_imports_langchain_private_names():
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "_lc_private.py" and "langchain_core.tracers._" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
