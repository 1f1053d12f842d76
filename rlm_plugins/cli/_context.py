"""Reading `run --context`: a file (left for the sandbox to load) or standard input, with a check for empty or
binary input."""

from __future__ import annotations

import codecs
import sys
from pathlib import Path
from typing import Any

from rlm_plugins.errors import ConfigurationError

_SNIFF_BYTES = 8192


def read_context(spec: str, strict: bool) -> Any:
    """The context to run over: a `Path` for a text file, `str` for text on stdin, `bytes` for binary input."""
    if spec == "-":
        stream = getattr(sys.stdin, "buffer", None)
        data = stream.read() if stream is not None else sys.stdin.read().encode("utf-8")
        problem = _problem(data, final=True)
        if problem:
            _complain(f"standard input {problem}", strict)
        return data.decode("utf-8") if problem != _BINARY else data
    path = Path(spec)
    if not path.is_file():
        raise ConfigurationError(f"--context {spec!r} is not a readable file")
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
            final = len(head) < _SNIFF_BYTES
    except OSError as exc:
        raise ConfigurationError(f"--context {spec!r} is not a readable file ({exc.strerror})") from None
    problem = _problem(head, final)
    if problem:
        _complain(f"--context {spec!r} {problem}", strict)
    return path.read_bytes() if problem == _BINARY else path


_EMPTY = "is empty: the model will see an empty context"
_BINARY = "looks binary (not UTF-8 text): the model will see it as bytes"


def _problem(head: bytes, final: bool) -> str | None:
    if not head:
        return _EMPTY
    if b"\x00" in head:
        return _BINARY
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=final)
    except UnicodeDecodeError:
        return _BINARY
    return None


def _complain(message: str, strict: bool) -> None:
    if strict:
        raise ConfigurationError(f"{message.split(':')[0]}; --strict refuses it")
    print(f"rlm-plugins: warning: {message} (--strict refuses it)", file=sys.stderr)
