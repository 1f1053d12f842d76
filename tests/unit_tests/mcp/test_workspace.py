"""The gateway's workspace: every escape is refused, every answer is bounded, and hosts paths never leak."""

from __future__ import annotations

import json
import os

import pytest

from rlm_plugins.errors import WorkspaceError
from rlm_plugins.mcp.gateway import Gateway, GatewayConfig
from rlm_plugins.mcp.workspace import MAX_READ_BYTES, MAX_READ_LINES, Workspace


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("".join(f"line {i}\n" for i in range(1, 1001)))
    (root / "README.md").write_text("hello\nworld\n")
    outside = tmp_path / "secret.txt"
    outside.write_text("top secret\n")
    (root / "leak").symlink_to(outside)
    (root / "leakdir").symlink_to(tmp_path)
    return root


@pytest.fixture
def gateway(tree, tmp_path):
    return Gateway(GatewayConfig(roots=[str(tree)], log_dir=str(tmp_path / "logs"), calls_per_minute=1000))


def call(gateway, tool, **arguments):
    return json.loads(gateway.call("test", tool, arguments))


@pytest.mark.parametrize(
    "name",
    ["../secret.txt", "/etc/passwd", "src/../../secret.txt", "leak", "leakdir/secret.txt", "~/x", "a\x00b"],
)
def test_escapes_are_refused(tree, name):
    with pytest.raises(WorkspaceError):
        Workspace([tree]).file(name)


def test_device_files_and_directories_are_not_opened(tree):
    (tree / "zero").symlink_to("/dev/zero")
    ws = Workspace([tree])
    with pytest.raises(WorkspaceError):
        ws.file("zero")
    with pytest.raises(WorkspaceError):
        ws.file("src")


def test_fifo_is_not_opened(tree):
    os.mkfifo(tree / "pipe")
    with pytest.raises(WorkspaceError, match="not a regular file"):
        Workspace([tree]).file("pipe")


def test_open_gives_handles_and_relative_names_only(gateway, tree):
    result = call(gateway, "open", path_or_glob="src/*.py")
    assert [f["name"] for f in result["files"]] == ["src/app.py"]
    assert result["files"][0]["handle"].startswith("h_")
    assert str(tree) not in json.dumps(result)


def test_read_is_bounded_to_200_lines(gateway):
    handle = call(gateway, "open", path_or_glob="src/app.py")["files"][0]["handle"]
    result = call(gateway, "read", handle=handle, start_line=10, n_lines=5000)
    assert len(result["lines"]) == MAX_READ_LINES
    assert result["lines"][0] == "line 10"
    assert result["truncated"] is True


def test_a_one_gigabyte_file_is_never_read_whole(gateway, tree):
    with open(tree / "huge.bin", "wb") as fh:
        fh.truncate(1 << 30)
    handle = call(gateway, "open", path_or_glob="huge.bin")["files"][0]["handle"]
    result = call(gateway, "read", handle=handle)
    assert sum(len(line) for line in result["lines"]) <= MAX_READ_BYTES
    assert result["truncated"] is True


def test_a_handle_swapped_for_a_symlink_is_refused(gateway, tree, tmp_path):
    handle = call(gateway, "open", path_or_glob="README.md")["files"][0]["handle"]
    (tree / "README.md").unlink()
    (tree / "README.md").symlink_to(tmp_path / "secret.txt")
    assert "error" in call(gateway, "read", handle=handle)


def test_list_hides_links_that_leave_and_host_paths(gateway, tree):
    names = {e["name"] for e in call(gateway, "list", handle_or_dir=".")["entries"]}
    assert names == {"README.md", "src"}
    assert "error" in call(gateway, "list", handle_or_dir="..")


def test_search_finds_bounded_hits(gateway):
    result = call(gateway, "search", handle_or_dir="src", pattern=r"line 1\d\d$", max_hits=7)
    assert [hit["line"] for hit in result["hits"]] == [100, 101, 102, 103, 104, 105, 106]
    assert result["complete"] is False


def test_search_refuses_bad_patterns_and_stops_catastrophic_ones(gateway, tree):
    assert "invalid regular expression" in call(gateway, "search", handle_or_dir=".", pattern="(")["error"]
    (tree / "evil.txt").write_text("a" * 4000 + "!\n")
    gateway.config.search_timeout = 1.0
    result = call(gateway, "search", handle_or_dir="evil.txt", pattern=r"^(a+)+$")
    assert "stopped" in result["error"]


def test_rate_limit_per_client(tree, tmp_path):
    gateway = Gateway(GatewayConfig(roots=[str(tree)], log_dir=str(tmp_path / "l"), calls_per_minute=3))
    for _ in range(3):
        assert "error" not in call(gateway, "list")
    assert "rate limit" in call(gateway, "list")["error"]
    assert "error" not in json.loads(gateway.call("another-client", "list", {}))


def test_provenance_records_every_call(gateway):
    handle = call(gateway, "open", path_or_glob="README.md")["files"][0]["handle"]
    call(gateway, "read", handle=handle)
    call(gateway, "read", handle="h_nope")
    entries = gateway.provenance.entries()
    assert [e["tool"] for e in entries] == ["open", "read", "read"]
    assert entries[1]["handles"] == [handle]
    assert entries[1]["bytes_returned"] > 0 and len(entries[1]["result_sha256"]) == 64
    assert {"time", "client", "arguments"} <= set(entries[0])


def test_budget_is_capped_by_the_server(gateway):
    assert gateway.budget({"max_iterations": 10_000})["max_iterations"] == 20
    with pytest.raises(WorkspaceError):
        gateway.budget({"max_iterations": -1})
    with pytest.raises(WorkspaceError):
        gateway.budget({"unknown": 1})


def test_several_roots_are_named_by_index(tree, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.txt").write_text("b\n")
    ws = Workspace([tree, other])
    assert ws.file("1:b.txt").name == "1:b.txt"
    with pytest.raises(WorkspaceError):
        ws.file("1:../ws/README.md")
