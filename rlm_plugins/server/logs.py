"""Structured JSON logs, one object per line, each carrying the id of the request it belongs to."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import uuid
from typing import Any

LOGGER = logging.getLogger("rlm_plugins.server")
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("rlm_request_id", default="-")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, request_id and the record's extras."""

    _PLAIN = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in self._PLAIN and k != "request_id"})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def setup_logging(level: str = "info") -> None:
    """Send the server's and uvicorn's logs to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("rlm_plugins.server", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True


def new_request_id(given: str | None) -> str:
    """The client's X-Request-ID when it is short and printable, else a fresh one."""
    if given and len(given) <= 128 and given.isprintable():
        return given
    return uuid.uuid4().hex
