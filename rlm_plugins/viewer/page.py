"""`write_html`: a log file in, one HTML file out."""

from __future__ import annotations

import os
from pathlib import Path

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.viewer._html import render_page
from rlm_plugins.viewer._model import Limits, load_log


def write_html(
    log: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, limits: Limits | None = None
) -> Path:
    """Write the page for `log` to `out` (default: the log's path with `.html`) and return its path.

    Raises:
        ConfigurationError: the log cannot be read or the page cannot be written; the message says which.

    Examples:
        >>> write_html("rlm_logs/rlm_2026-01-01_10-00-00_ab12cd34.jsonl")  # doctest: +SKIP
        PosixPath('rlm_logs/rlm_2026-01-01_10-00-00_ab12cd34.html')
    """
    source = Path(log)
    target = Path(out) if out is not None else source.with_suffix(".html")
    try:
        data = load_log(source, limits)
    except OSError as exc:
        msg = f"cannot read the log {str(source)!r} ({exc.strerror}); pass a JSONL log file"
        raise ConfigurationError(msg) from None
    try:
        target.write_text(render_page(data), encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot write {str(target)!r} ({exc.strerror}); pass another --out") from None
    return target
