"""Host side of `RLMAgent.save` / `RLMAgent.load`: the agent file, and moving REPL variables out of and into a
sandbox through `_repl_state` (shipped as its own source, run there).

The file is a zip archive: `agent.json` (the conversation, the contexts' descriptions, what was and was not saved)
and `variables.pickle` (the REPL's picklable variables). Loading a pickle runs code: load only files you saved.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import pathlib
import zipfile
from dataclasses import dataclass, field
from typing import Any

from rlm_plugins.agent import _repl_state
from rlm_plugins.agent.errors import AgentStateError
from rlm_plugins.repl import driver
from rlm_plugins.repl.base import Sandbox

FORMAT = 1
MANIFEST = "agent.json"
VARIABLES = "variables.pickle"
SOURCE_NAME = "_rlm_agent_src"
BLOB_NAME = "_rlm_agent_blob"
KEEP_TOOL = "_rlm_agent_keep"
_BOOT = f'_rlm_agent_mod = {{"__name__": "_rlm_agent_state"}}\nexec({SOURCE_NAME}, _rlm_agent_mod)\n'
STATE_TIMEOUT = 600.0


@dataclass
class SaveReport:
    """What a save (or a load) moved: the variables saved (restored), and those it could not, with the reason."""

    path: str
    saved: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def dump_variables(sandbox: Sandbox, skip: set[str]) -> tuple[bytes, list[str], dict[str, str], dict[str, str]]:
    """(the pickled variables, their names, {name: why not saved}, {name: module}) of the REPL in `sandbox`."""
    got: list[Any] = []
    call = f'_rlm_agent_mod["dump"](globals(), {sorted(skip)!r}, {repl_defaults()!r})'
    code = _BOOT + f"{KEEP_TOOL}(*{call})\ndel _rlm_agent_mod\n"
    _run(sandbox, code, got, "save")
    blob, names, skipped, imports = got[0]
    try:
        return base64.b64decode(blob), list(names), dict(skipped), dict(imports)
    except (binascii.Error, TypeError) as exc:
        raise AgentStateError(f"the sandbox returned unreadable saved variables ({exc})") from None


def repl_defaults() -> dict[str, Any]:
    """The plain-data variables a fresh REPL starts with (the driver's own state, such as the `rlms` answer dict)."""
    fresh = driver.Session(lambda name, args, kwargs: None).namespace
    plain = (dict, list, str, int, float, bool)
    return {name: value for name, value in fresh.items() if not name.startswith("__") and isinstance(value, plain)}


def load_variables(sandbox: Sandbox, blob: bytes) -> tuple[list[str], dict[str, str]]:
    """Bind the pickled variables in `sandbox`'s REPL; (names restored, {name: why not})."""
    sandbox.load(BLOB_NAME, blob, "bytes")
    got: list[Any] = []
    code = _BOOT + f'{KEEP_TOOL}(_rlm_agent_mod["load"](globals(), {BLOB_NAME}))\ndel _rlm_agent_mod, {BLOB_NAME}\n'
    _run(sandbox, code, got, "restore")
    report = got[0][0]
    return list(report["restored"]), dict(report["failed"])


def _run(sandbox: Sandbox, code: str, got: list[Any], what: str) -> None:
    sandbox.load(SOURCE_NAME, pathlib.Path(_repl_state.__file__).read_text(encoding="utf-8"))

    def keep(*values: Any) -> None:
        got.append(values)

    result = sandbox.execute(code, tools={KEEP_TOOL: keep}, timeout=STATE_TIMEOUT)
    if result.error is not None or not got:
        why = str(result.error) if result.error is not None else (result.stderr or "nothing came back")
        raise AgentStateError(f"the REPL could not {what} its variables: {why}")


def write(path: str | os.PathLike[str], manifest: dict[str, Any], blob: bytes | None) -> None:
    """Write the agent file (atomically: a failed save leaves an earlier file as it was)."""
    target = pathlib.Path(path)
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps({"format": FORMAT, **manifest}, ensure_ascii=False))
        if blob is not None:
            archive.writestr(VARIABLES, blob)
    os.replace(partial, target)


def read(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes | None]:
    """The manifest and pickled variables of an agent file."""
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read(MANIFEST))
            blob = archive.read(VARIABLES) if VARIABLES in archive.namelist() else None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise AgentStateError(f"{os.fspath(path)!r} is not an agent file written by RLMAgent.save ({exc})") from None
    if manifest.get("format") != FORMAT:
        msg = f"{os.fspath(path)!r} has agent-file format {manifest.get('format')!r}; this version reads {FORMAT}"
        raise AgentStateError(msg)
    return manifest, blob
