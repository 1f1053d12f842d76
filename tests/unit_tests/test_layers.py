"""The layers of DESIGN section 1: the top level, core and repl import no framework, and core imports no adapter."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

FRAMEWORKS = ("dspy", "langchain", "langchain_core", "langgraph", "litellm", "e2b", "openai", "anthropic")


def _imported_after(statement: str) -> list[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_core_and_repl_import_no_framework():
    modules = _imported_after("import rlm_plugins, rlm_plugins.core.engine, rlm_plugins.repl, rlm_plugins.cli")
    leaked = sorted({m.split(".")[0] for m in modules} & set(FRAMEWORKS))
    assert leaked == [], f"importing the core pulled in {leaked}"


def test_core_and_repl_sources_import_no_adapter():
    """Dependencies point down only: core and repl never import the dspy, langchain or standalone packages."""
    root = Path(__file__).resolve().parents[2] / "rlm_plugins"
    upward = (
        "rlm_plugins.dspy",
        "rlm_plugins.langchain",
        "rlm_plugins.standalone",
        "rlm_plugins.models",
        "rlm_plugins.cli",
        "rlm_plugins.server",
    )
    offenders = []
    for path in [*root.joinpath("core").glob("*.py"), *root.joinpath("repl").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(upward)]
    assert offenders == []
