"""Resume a paused run in a fresh process: `python -m tests.unit_tests.core._resume_elsewhere DATA.json [OPTIONS]`.

Prints one JSON line: {"response": ..., "finish_reason": ...} on success, {"error": type, "message": ...} else.
The root model continues the script of `tests.unit_tests.core.test_pause` (it reads the variable left in the REPL).
"""

from __future__ import annotations

import json
import pathlib
import sys

from rlm_plugins.core.drivers import drive
from tests.unit_tests.core._scripted import by_marker, engine, repl

CONTINUE = {"pause-me": [repl("x = 41"), repl("FINAL(x + 1)")]}


def main() -> None:
    data = json.loads(pathlib.Path(sys.argv[1]).read_text())
    options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    kind = data["sandbox"]["kind"]
    try:
        run = engine(by_marker(CONTINUE), sandbox=kind, sandbox_options=options).resume(data)
        result = drive(run)
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        return
    print(json.dumps({"response": result.response, "finish_reason": result.finish_reason}))


if __name__ == "__main__":
    main()
