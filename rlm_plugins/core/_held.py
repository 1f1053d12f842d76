"""Sandboxes of paused runs, held in this process until their run resumes or their time-to-live ends.

A paused run's data names its sandbox by a token; the sandbox object (and so the REPL state) stays here until
the run resumes, or is closed when its time-to-live ends.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from rlm_plugins.repl.base import Sandbox

PROCESS = f"{socket.gethostname()}:{os.getpid()}"
"""This process, as paused-run data names it."""


@dataclass
class _Held:
    sandbox: Sandbox
    expires: float


_HELD: dict[str, _Held] = {}
_LOCK = threading.Lock()


def hold(sandbox: Sandbox, ttl: float | None) -> str:
    """Keep `sandbox` for up to `ttl` seconds (None: until taken); returns its token."""
    token = uuid.uuid4().hex
    with _LOCK:
        _HELD[token] = _Held(sandbox, float("inf") if ttl is None else time.monotonic() + ttl)
    sweep()
    if ttl is not None:
        timer = threading.Timer(ttl, sweep)
        timer.daemon = True
        timer.start()
    return token


def take(token: str) -> Sandbox | None:
    """The held sandbox, removed from the registry; None when it is unknown or expired."""
    sweep()
    with _LOCK:
        held = _HELD.pop(token, None)
    return None if held is None else held.sandbox


def release(token: str) -> None:
    """Close a held sandbox now (its paused run will never resume)."""
    sandbox = take(token)
    if sandbox is not None:
        sandbox.close()


def sweep() -> None:
    """Close the sandboxes whose time-to-live has ended."""
    now = time.monotonic()
    with _LOCK:
        dead = [token for token, held in _HELD.items() if held.expires <= now]
        sandboxes = [_HELD.pop(token).sandbox for token in dead]
    for sandbox in sandboxes:
        threading.Thread(target=sandbox.close, name="rlm-held-close", daemon=True).start()
