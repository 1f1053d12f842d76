"""The trajectory viewer: turns a JSONL run log (ours or the official `rlms` one) into one self-contained page.

`write_html(log, out)` writes the page; `serve(log_dir)` serves a directory of logs and refreshes open pages while
runs are going. From the shell: `rlm-plugins view LOG.jsonl [--out FILE.html] [--open]` and
`rlm-plugins view --serve [DIR]`.
"""

from rlm_plugins.viewer._html import render_page
from rlm_plugins.viewer._model import Limits, load_log
from rlm_plugins.viewer.page import write_html
from rlm_plugins.viewer.serve import serve

__all__ = ["Limits", "load_log", "render_page", "serve", "write_html"]
