"""The one private name of langchain-core this package relies on, imported here only.

`_StreamingCallbackHandler` marks the handlers `stream()`/`astream_events` install; langchain-core exports no public
way to tell them apart. `tests/unit_tests/langchain/test_lc_private.py` fails loudly if it moves or changes.
"""

from langchain_core.tracers._streaming import _StreamingCallbackHandler as StreamingCallbackHandler

__all__ = ["StreamingCallbackHandler"]
