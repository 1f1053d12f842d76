"""The command lines of the isolated levels: mount order and options matter, so they are checked as data."""

from __future__ import annotations

from rlm_plugins.repl import _cgroup, _identity, _jail, isolation


def test_private_tmp_is_mounted_before_the_python_runtime(monkeypatch):
    """A virtualenv under /tmp (as in a CI checkout) must stay visible above the private /tmp."""
    monkeypatch.setattr(isolation, "_python_roots", lambda: ["/tmp/checkout/.venv", "/opt/python"])
    args = isolation._bwrap_args(64 * 1024**2)
    tmpfs = args.index("--tmpfs")
    roots = ("/tmp/checkout/.venv", "/opt/python")
    binds = [i for i, a in enumerate(args) if a == "--ro-bind" and args[i + 1] in roots]
    assert len(binds) == 2
    assert all(tmpfs < i for i in binds)
    assert args[args.index("--tmpfs") - 1] == "1777"
    assert args[args.index("--tmpfs") - 4 : args.index("--tmpfs") - 2] == ["--size", str(64 * 1024**2)]


def test_jail_reads_its_options_up_to_the_command():
    opts, argv = _jail.parse(
        ["--join", "/a/procs", "--join", "/b/procs", "--private", "--owner", "7:8", "--", "x", "--y"]
    )
    assert opts == {"--join": ["/a/procs", "/b/procs"], "--private": [""], "--owner": ["7:8"]}
    assert argv == ["x", "--y"]


def test_namespace_command_joins_the_cgroups_and_caps_the_tmpfs(monkeypatch):
    monkeypatch.setattr(isolation.os, "geteuid", lambda: 0)
    group = _cgroup.Group(["/cg/pids/rlm-1-0", "/cg/memory/rlm-1-0"], frozenset({"processes", "memory"}))
    tenancy = isolation.Tenancy(_identity.Identity(1_900_000_007, 1_900_000_007), group)
    launch = isolation.build("namespace", isolation.Limits(disk=64 * 1024**2), [], tenancy)
    jail = launch.argv.index(str(isolation.JAIL_PATH))
    opts, command = _jail.parse(launch.argv[jail + 1 :])
    assert opts["--join"] == ["/cg/pids/rlm-1-0/cgroup.procs", "/cg/memory/rlm-1-0/cgroup.procs"]
    assert (opts["--storage"], opts["--owner"]) == ([str(64 * 1024**2)], ["1900000007:1900000007"])
    assert "--reuid=1900000007" in command
    assert {"memory_cap", "process_cap", "storage_cap"} <= launch.guarantees
