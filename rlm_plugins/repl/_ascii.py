"""Zero-copy access to the bytes of an ASCII `str`, so a large text context reaches a file without encoding.

CPython stores an ASCII-only str as one contiguous run of bytes right after its header, and those bytes are its
UTF-8 encoding. Writing them straight from there saves a full copy (and its page faults) of a 100 MB context.
The layout is checked on this interpreter before it is trusted; anything else takes the ordinary `encode` path.
"""

from __future__ import annotations

import ctypes
import functools
import sys

_PROBE = "rlm-plugins ascii layout probe " * 4


@functools.lru_cache(maxsize=1)
def _header_size() -> int | None:
    """Bytes between a compact ASCII str's address and its characters, or None when it cannot be trusted here."""
    if sys.implementation.name != "cpython":
        return None
    offset = sys.getsizeof("") - 1
    probe = (ctypes.c_char * len(_PROBE)).from_address(id(_PROBE) + offset)
    return offset if bytes(probe) == _PROBE.encode("ascii") else None


def ascii_view(text: str) -> memoryview | None:
    """A read-only view of `text`'s UTF-8 bytes without copying, or None (not ASCII, or not CPython's layout).

    The view is only valid while `text` is alive: the caller must keep its reference until it is done.
    """
    offset = _header_size()
    if offset is None or type(text) is not str or not text.isascii():
        return None
    buffer = (ctypes.c_char * len(text)).from_address(id(text) + offset)
    return memoryview(buffer).cast("B").toreadonly()
