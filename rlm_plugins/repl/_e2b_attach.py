"""Moving a running E2B sandbox between host processes: `detach` it from this one, `attach` it in another.

A paused run keeps its REPL in the E2B sandbox, so it can resume on any machine with the API key: `detach`
stops this process's link without killing the driver, extends the sandbox's life by the pause's time-to-live,
and returns plain data; `attach` reconnects to that sandbox by id and to its driver by pid
(`Sandbox.connect`, `commands.connect`). The driver's REPL state never leaves the sandbox.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
from typing import Any

from rlm_plugins.errors import SandboxError, SandboxUnavailableError
from rlm_plugins.repl._e2b_link import AsyncLink, SyncLink
from rlm_plugins.repl.e2b import E2BSandbox


class _AttachedLink(SyncLink):
    """A link to a driver that another host process started."""

    def attach(self, sandbox_id: str, pid: int) -> None:
        from e2b import Sandbox

        self.sbx = Sandbox.connect(sandbox_id, **self.api)
        self.pid = pid
        handle = self.sbx.commands.connect(pid, timeout=0)
        threading.Thread(target=self._read, args=(handle,), name="rlm-e2b-out", daemon=True).start()
        threading.Thread(target=self._send_loop, name="rlm-e2b-in", daemon=True).start()
        self.extend(0)


def detach(sandbox: E2BSandbox, ttl: float | None) -> dict[str, Any]:
    """Let go of `sandbox` without stopping it (alive `ttl` more seconds); returns what `attach` needs."""
    link, client = sandbox._link, sandbox._client
    if link is None or link.pid is None or client is None or client.dead is not None:
        raise SandboxError("only a running E2B sandbox can be detached; this one never started or has died")
    _keep_alive(link, int(ttl or 0) + link.lifetime)
    ref = {
        "sandbox_id": link.sandbox_id,
        "pid": link.pid,
        "session_dir": sandbox.session_dir,
        "driver_path": sandbox.driver_path,
        "template": sandbox.template,
        "domain": link.create.get("domain"),
        "debug": sandbox.debug,
        "lifetime": sandbox.sandbox_timeout,
        "loads": sandbox._loads,
        "max_output_chars": sandbox.max_output_chars,
        "final_fields": sandbox.final_fields,
    }
    with sandbox._start_lock:
        sandbox._closed = True
        sandbox._link = None  # close() and the exit hook now have nothing to kill
    if isinstance(link, SyncLink):
        with link._cv:
            link._stopping = True
            link._cv.notify()
    client._on_fatal = _keep_running  # releasing the client must not stop the driver it talked to
    sandbox._release()
    return ref


def _keep_alive(link: SyncLink | AsyncLink, seconds: int) -> None:
    """Make the E2B sandbox live `seconds` more, without blocking an event loop the link runs on."""
    if not isinstance(link, AsyncLink):
        link.sbx.set_timeout(seconds)
    elif link._on_loop():
        _PENDING.add(task := link.loop.create_task(link.sbx.set_timeout(seconds)))
        task.add_done_callback(_PENDING.discard)
    elif link._loop_alive():
        link._sync(link.sbx.set_timeout(seconds))
    else:
        from e2b import Sandbox

        Sandbox.connect(link.sandbox_id, **link.api).set_timeout(seconds)


_PENDING: set[Any] = set()


def _keep_running() -> None:
    """The detached driver keeps running: nothing to stop."""


def attach(ref: dict[str, Any], **options: Any) -> E2BSandbox:
    """The E2B sandbox `detach` described, reconnected from this process (`options` as for `E2BSandbox`)."""
    settings = {
        "template": ref["template"],
        "timeout": ref["lifetime"],
        "domain": ref["domain"],
        "debug": ref["debug"],
        "upload_driver": False,
        "driver_path": ref["driver_path"],
        "max_output_chars": ref["max_output_chars"],
        "final_fields": ref["final_fields"],
    }
    sandbox = E2BSandbox(**{**settings, **options})
    sandbox.session_dir, sandbox._loads = ref["session_dir"], ref["loads"]
    link = sandbox._new_link(_AttachedLink)
    try:
        link.attach(ref["sandbox_id"], ref["pid"])  # type: ignore[attr-defined]
    except Exception as exc:
        sandbox.close()
        msg = (
            f"the paused run's E2B sandbox {ref['sandbox_id']} (driver pid {ref['pid']}) cannot be reached: "
            f"{type(exc).__name__}: {exc}. It may have outlived its time-to-live; start the run again"
        )
        raise SandboxUnavailableError(msg) from exc
    sandbox._started = cf.Future()
    sandbox._started.set_result(None)
    return sandbox
