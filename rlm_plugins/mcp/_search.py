"""Regex search over files, run in a separate, time-limited interpreter (stdlib only).

A hostile pattern can backtrack for hours and Python's `re` cannot be interrupted, so the gateway runs this file
with `python -I` and kills it at a deadline. Input: one JSON object on stdin; output: one JSON object on stdout.
"""

import json
import re
import sys

MAX_LINE = 4096
MAX_TEXT = 300


def search(pattern, files, max_hits, max_bytes):
    """Hits as {name, line, text}; stops at max_hits or after max_bytes scanned."""
    regex = re.compile(pattern)
    hits, scanned, complete = [], 0, True
    for name, path in files:
        try:
            lines = _lines(path)
            for number, raw in enumerate(lines, start=1):
                scanned += len(raw)
                if scanned > max_bytes:
                    return hits, False
                text = raw.decode("utf-8", "replace").rstrip("\n")
                if regex.search(text):
                    hits.append({"name": name, "line": number, "text": text[:MAX_TEXT]})
                    if len(hits) >= max_hits:
                        return hits, False
        except OSError:
            continue
    return hits, complete


def _lines(path):
    """The file's lines, each read at most MAX_LINE bytes at a time."""
    with open(path, "rb") as fh:
        while True:
            raw = fh.readline(MAX_LINE)
            if not raw:
                return
            yield raw


def main():
    request = json.load(sys.stdin)
    hits, complete = search(request["pattern"], request["files"], request["max_hits"], request["max_bytes"])
    json.dump({"hits": hits, "complete": complete}, sys.stdout)


if __name__ == "__main__":
    main()
