"""Saving and restoring a REPL's variables, run INSIDE the sandbox (stdlib only, Python 3.9+).

The host ships this file's source into the sandbox (as the driver is shipped) and calls `dump` or `load` there;
nothing here imports rlm_plugins. Variables are pickled one after another through one pickler, so objects shared
between them (`context` and `context_<n>`) stay shared after a restore. A variable that cannot be pickled is
reported with the reason, never dropped silently: functions and classes defined in the REPL itself (their code
lives nowhere else) and objects such as open files, locks or generators. Modules are recorded by name and
imported again.
"""

from __future__ import annotations

import base64
import importlib
import io
import pickle
import types
from typing import Any

PROTOCOL = 4
OWN_PREFIX = "_rlm_agent"


class _Pickler(pickle.Pickler):
    """A pickler that refuses functions and classes defined in the REPL (they would unpickle as something else)."""

    main = "__main__"

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (types.FunctionType, type)) and getattr(obj, "__module__", None) == self.main:
            kind = "class" if isinstance(obj, type) else "function"
            raise pickle.PicklingError(
                f"{kind} {obj.__qualname__} was defined in the REPL; define it again after loading"
            )
        return NotImplemented


def dump(namespace: dict, skip: list, defaults: dict) -> tuple:
    """(base64 of the pickled variables, their names, {name: why not saved}, {name: module} of imported modules).

    Names in `skip` (the REPL's functions and tools) and names still holding the value a fresh REPL gives them
    (`defaults`) are the REPL's own, not the user's: they are left out.
    """
    skipped: dict = {}
    imports: dict = {}
    names: list = []
    main = namespace.get("__name__", "__main__")
    for name, value in list(namespace.items()):
        if name.startswith("__") or name.startswith(OWN_PREFIX) or name in skip:
            continue
        if name in defaults and _same(value, defaults[name]):
            continue
        if isinstance(value, types.ModuleType):
            imports[name] = value.__name__
            continue
        problem = _unpicklable(value, main)
        if problem:
            skipped[name] = problem
        else:
            names.append(name)
    out = io.BytesIO()
    pickler = _Pickler(out, PROTOCOL)
    pickler.main = main
    pickler.dump({"names": names, "imports": imports})
    for name in names:
        pickler.dump(namespace[name])
    return base64.b64encode(out.getvalue()).decode("ascii"), names, skipped, imports


def load(namespace: dict, blob: bytes) -> dict:
    """Bind the saved variables in `namespace`; {"restored": [names], "failed": {name: reason}}."""
    unpickler = pickle.Unpickler(io.BytesIO(blob))
    header = unpickler.load()
    restored: list = []
    failed: dict = {}
    broken = ""
    for name in header["names"]:
        if broken:
            failed[name] = f"not restored: an earlier variable failed ({broken})"
            continue
        try:
            namespace[name] = unpickler.load()
            restored.append(name)
        except Exception as exc:
            broken = f"{type(exc).__name__}: {exc}"[:300]
            failed[name] = broken
    for name, module in header["imports"].items():
        try:
            namespace[name] = importlib.import_module(module)
            restored.append(name)
        except Exception as exc:
            failed[name] = f"import {module} failed: {type(exc).__name__}: {exc}"[:300]
    return {"restored": restored, "failed": failed}


def _same(value: Any, default: Any) -> bool:
    try:
        return type(value) is type(default) and bool(value == default)
    except Exception:  # a value whose comparison fails is the user's
        return False


def _unpicklable(value: Any, main: str) -> str:
    """Why `value` cannot be pickled ("" when it can)."""
    pickler = _Pickler(io.BytesIO(), PROTOCOL)
    pickler.main = main
    try:
        pickler.dump(value)
    except Exception as exc:  # anything pickling raises: the reason is reported to the caller
        return f"{type(exc).__name__}: {exc}"[:300]
    return ""
