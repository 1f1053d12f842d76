"""The gateway's provenance log: one JSON line per operation, so what a client saw can be audited later."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

MAX_TAIL_BYTES = 256 * 1024


class ProvenanceLog:
    """Appends {time, client, tool, arguments, handles, bytes_returned, result_sha256} records to a JSONL file.

    Args:
        path: the log file; its directory is created if needed.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(self, client: str, tool: str, arguments: dict[str, Any], handles: list[str], result: str) -> None:
        """Append one record; `result` is what was returned to the client, hashed rather than stored."""
        body = result.encode("utf-8", "replace")
        entry = {
            "time": time.time(),
            "client": client,
            "tool": tool,
            "arguments": arguments,
            "handles": handles,
            "bytes_returned": len(body),
            "result_sha256": hashlib.sha256(body).hexdigest(),
        }
        line = json.dumps(entry, ensure_ascii=False, default=str) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)

    def tail(self, max_bytes: int = MAX_TAIL_BYTES) -> str:
        """The last records, whole lines only, at most `max_bytes`."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - max_bytes))
                data = fh.read()
        except FileNotFoundError:
            return ""
        if size > max_bytes:
            data = data.split(b"\n", 1)[-1]
        return data.decode("utf-8", "replace")

    def entries(self) -> list[dict[str, Any]]:
        """The records in the tail, parsed."""
        return [json.loads(line) for line in self.tail().splitlines() if line.strip()]
