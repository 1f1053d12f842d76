"""`view --serve`: the stdlib server lists logs, serves pages and data, and notices a growing log."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.request

import pytest

from rlm_plugins.cli import main
from rlm_plugins.errors import ConfigurationError
from rlm_plugins.viewer.serve import make_server


@pytest.fixture
def served(shape_logs, tmp_path):
    """A server on a free loopback port over a directory holding the `final` log."""
    log = shutil.copy(shape_logs["final"], tmp_path / "run.jsonl")
    server = make_server(tmp_path, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path / "run.jsonl"
    server.shutdown()
    server.server_close()
    assert log


def get(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.geturl(), response.read().decode()


def test_index_lists_the_logs(served):
    base, _ = served
    status, _, body = get(base + "/")
    assert status == 200 and "/view/run.jsonl" in body


def test_latest_opens_the_newest_log_as_a_live_page(served):
    base, _ = served
    _, url, body = get(base + "/latest")
    assert url.endswith("/view/run.jsonl")
    assert '"url":"/data/run.jsonl"' in body


def test_data_version_changes_when_the_log_grows(served):
    base, log = served
    first = json.loads(get(base + "/data/run.jsonl")[2])
    assert first["data"]["runs"][0]["totals"]["iterations"] == 3
    with log.open("a") as fh:
        fh.write(json.dumps({"type": "iteration", "iteration": 4, "response": "more", "code_blocks": []}) + "\n")
    second = json.loads(get(base + "/data/run.jsonl")[2])
    assert second["version"] != first["version"]
    assert second["data"]["runs"][0]["totals"]["iterations"] == 4


@pytest.mark.parametrize("path", ["/view/..%2Frun.jsonl", "/data/missing.jsonl", "/view/.hidden.jsonl", "/nope/x"])
def test_only_logs_in_the_directory_are_served(served, path):
    base, _ = served
    with pytest.raises(urllib.error.HTTPError) as info:
        get(base + path)
    assert info.value.code == 404


def test_serve_needs_a_directory(tmp_path):
    with pytest.raises(ConfigurationError, match="directory of logs"):
        make_server(tmp_path / "missing", port=0)


def test_cli_view_writes_the_page_and_prints_its_path(shape_logs, tmp_path, capsys):
    out = tmp_path / "page.html"
    assert main(["view", str(shape_logs["depth2"]), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert "Most common fruit here?" in out.read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["view"], "needs a LOG.jsonl"), (["view", "/nonexistent.jsonl"], "is not a log file")],
)
def test_cli_view_bad_arguments_exit_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
