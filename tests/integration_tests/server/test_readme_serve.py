"""The README's "Serve it" client example runs as written against a real server (its model name served by the
scripted upstream, its base URL pointed at the test server)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration_tests.server._scripts import SUB_REPLY
from tests.integration_tests.server.conftest import model_config

README = Path(__file__).resolve().parents[3] / "README.md"


def serve_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Serve it", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


def test_readme_client_example_runs(serve, upstream, tmp_path, monkeypatch, capsys):
    code = serve_example()
    model = re.search(r'model="([^"]+)"', code).group(1)
    key = re.search(r'api_key="([^"]+)"', code).group(1)
    server = serve(api_keys=[key], models={model: model_config(upstream)})
    monkeypatch.chdir(tmp_path)
    (tmp_path / "report.txt").write_text("Acme shipped crates.\n" * 2_000)
    exec(compile(code.replace("http://127.0.0.1:8000/v1", server.base_url), "README", "exec"), {})
    assert capsys.readouterr().out.strip() == SUB_REPLY + "!"
    roots = [r for r in upstream.requests if r["messages"][0]["role"] == "system"]
    assert "Acme shipped crates.\\nAcme" not in str(roots), "the long report went into the REPL, not the prompt"
