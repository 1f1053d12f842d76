"""The page: one self-contained HTML file built from the packaged template, stylesheet and script."""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources
from typing import Any

from rlm_plugins._version import __version__


@cache
def asset(name: str) -> str:
    """The text of a file in `rlm_plugins/viewer/assets/`."""
    return resources.files("rlm_plugins.viewer").joinpath("assets", name).read_text(encoding="utf-8")


def script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element: every `<` is escaped, so no `</script>` can end it early."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).replace("<", "\\u003c")


def render_page(data: dict[str, Any], live: dict[str, Any] | None = None) -> str:
    """The HTML page for `data` (from `load_log`); `live` makes it poll a URL for updates (`view --serve`)."""
    parts = {
        "/*RLM:VERSION*/": html.escape(__version__),
        "/*RLM:TITLE*/": html.escape(str(data.get("source") or "log")),
        "/*RLM:CSS*/": asset("viewer.css"),
        "/*RLM:JS*/": asset("viewer.js"),
        "/*RLM:LIVE*/": script_json(live),
        "/*RLM:DATA*/": script_json(data),
    }
    page = asset("viewer.html")
    for marker, text in parts.items():
        head, found, tail = page.partition(marker)
        if not found:
            raise RuntimeError(f"the viewer template lost its {marker} marker")
        page = head + text + tail
    return page
