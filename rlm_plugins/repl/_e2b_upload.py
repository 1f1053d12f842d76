"""What `files.write` streams into an E2B sandbox for a context value, without holding a second copy of it.

A `pathlib.Path` goes as its open file (the SDK reads it in 64 KiB pieces, on a worker thread in the async SDK);
every other value as an iterator of ~1 MiB byte chunks encoded on the fly. No I/O happens here.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, BinaryIO

from rlm_plugins._threads import in_thread
from rlm_plugins.errors import ConfigurationError
from rlm_plugins.repl.base import Format

CHUNK_BYTES = 1024 * 1024
COMPRESS_MIN_BYTES = 1024 * 1024
"""`compress=None` gzips uploads of at least this size: below it the time saved on the wire is too small to see."""
_PACKED = frozenset((".gz", ".tgz", ".bz2", ".xz", ".zst", ".zip", ".7z", ".png", ".jpg", ".jpeg", ".gif", ".webp"))


def should_compress(value: Any, compress: bool | None) -> bool:
    """Whether to gzip an upload: as asked, or (None) when it is large and not already compressed."""
    if compress is not None:
        return compress
    if isinstance(value, pathlib.Path):
        try:
            return value.suffix.lower() not in _PACKED and value.stat().st_size >= COMPRESS_MIN_BYTES
        except OSError:
            return False
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return len(value) >= COMPRESS_MIN_BYTES
    return True  # JSON too big to go inline: its size is unknown until it is encoded, and JSON packs well


def open_source(value: Any, fmt: Format) -> BinaryIO | Iterator[bytes]:
    """The upload body for `value`: an open binary file for a Path (the caller closes it), else byte chunks."""
    if isinstance(value, pathlib.Path):
        try:
            return open(value, "rb")
        except OSError as exc:
            raise ConfigurationError(f"cannot read the context file {str(value)!r}: {exc.strerror}") from exc
    return iter_chunks(value, fmt)


def iter_chunks(value: Any, fmt: Format) -> Iterator[bytes]:
    """`value` encoded for the driver's `read_value(path, fmt)`, in chunks of about CHUNK_BYTES."""
    if fmt == "text":
        text = value if isinstance(value, str) else str(value)
        for i in range(0, len(text), CHUNK_BYTES):
            yield text[i : i + CHUNK_BYTES].encode("utf-8", "surrogateescape")
    elif fmt in ("bytes", "mmap"):
        view = memoryview(value if isinstance(value, (bytes, bytearray, memoryview)) else str(value).encode())
        view = view.cast("B")
        for i in range(0, len(view), CHUNK_BYTES):
            yield bytes(view[i : i + CHUNK_BYTES])
    else:
        parts: list[str] = []
        size = 0
        for part in json.JSONEncoder(ensure_ascii=False, default=str).iterencode(value):
            parts.append(part)
            size += len(part)
            if size >= CHUNK_BYTES:
                yield "".join(parts).encode("utf-8", "surrogateescape")
                parts, size = [], 0
        if parts:
            yield "".join(parts).encode("utf-8", "surrogateescape")


async def aiter_chunks(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The async SDK streams only async iterables; each chunk is encoded on a worker thread."""
    while True:
        chunk = await in_thread(next, chunks, None)
        if chunk is None:
            return
        yield chunk
