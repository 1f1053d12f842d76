"""Guards on the DSPy internals the adapter still needs (all in `rlm_plugins.dspy._dspy_private`).

If one of these fails after a DSPy upgrade, DSPy changed an internal we rely on: update `_dspy_private` (and the
upper bound on dspy in pyproject.toml) rather than this test.
"""

from __future__ import annotations

import ast
import pathlib
import threading

import dspy

from rlm_plugins.dspy import _dspy_private
from rlm_plugins.dspy._context import applied, capture

PACKAGE = pathlib.Path(_dspy_private.__file__).parent
PRIVATE_HELPERS = {"_validate_interpreter_factory", "_validate_interpreter", "_strip_code_fences"}


def test_dspy_context_overrides_live_in_the_context_variable():
    marker = object()
    with dspy.context(rlm_compat_marker=marker):
        assert _dspy_private.overrides_var.get()["rlm_compat_marker"] is marker
        assert capture()["rlm_compat_marker"] is marker
    assert "rlm_compat_marker" not in _dspy_private.overrides_var.get()


def test_captured_overrides_reach_another_thread():
    seen = []
    with dspy.context(rlm_compat_marker="call"):
        overrides = capture()

    def worker():
        with applied(overrides):
            seen.append(dspy.settings.get("rlm_compat_marker"))
        seen.append(dspy.settings.get("rlm_compat_marker"))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=30)
    assert seen == ["call", None]


def test_python_interpreter_keeps_a_tool_registration_flag():
    interp = dspy.PythonInterpreter()
    assert hasattr(interp, "_tools_registered"), "dspy.PythonInterpreter dropped _tools_registered"
    interp._tools_registered = True
    _dspy_private.reset_tool_registration(interp)
    assert interp._tools_registered is False
    _dspy_private.reset_tool_registration(object())


def test_only_the_private_module_imports_dspy_internals():
    offenders = []
    for path in PACKAGE.glob("*.py"):
        if path.name == "_dspy_private.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dspy"):
                offenders += [(path.name, a.name) for a in node.names if a.name in PRIVATE_HELPERS]
            if isinstance(node, ast.ImportFrom) and node.module == "dspy.dsp.utils.settings":
                offenders.append((path.name, node.module))
            if isinstance(node, ast.Attribute) and node.attr in {"_tools_registered", "thread_local_overrides"}:
                offenders.append((path.name, node.attr))
    assert offenders == []
